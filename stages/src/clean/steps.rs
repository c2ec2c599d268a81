//! The sequence of operations of a clean stage, read from its config: op keys in file order,
//! or an explicit `steps = [{ op = ... }, ...]` array. Each step remembers the key path it
//! came from, so every problem points at the exact place in the pipeline file.

use arrow::datatypes::Schema;
use serde_json::{Map, Value};
use sluice_core::registry::Issue;

use super::clip::Clip;
use super::convert::{Cast, ParseTimestamp};
use super::dedup::Dedup;
use super::expr::{Filter, SqlStep};
use super::nulls::{DropNulls, FillNulls};
use super::text::TextOp;

/// Every operation name, as written.
pub const OP_NAMES: &[&str] = &[
    "select",
    "drop",
    "rename",
    "cast",
    "drop_nulls",
    "fill_nulls",
    "dedup",
    "filter",
    "trim",
    "lowercase",
    "clip",
    "parse_timestamp",
    "sql",
];

/// A column named in the config, with the key path that named it.
#[derive(Debug, Clone, PartialEq)]
pub struct ColRef {
    /// The column name.
    pub name: String,
    /// Where it was written (`drop_nulls.0`, `cast.Quantity`).
    pub key: String,
}

impl ColRef {
    /// A column named at `key`.
    pub fn new(name: impl Into<String>, key: impl Into<String>) -> Self {
        ColRef { name: name.into(), key: key.into() }
    }

    /// The index of this column in `schema`, or an "unknown column" issue with a hint.
    pub fn find(&self, schema: &Schema, issues: &mut Vec<Issue>) -> Option<usize> {
        match schema.index_of(&self.name) {
            Ok(i) => Some(i),
            Err(_) => {
                issues.push(unknown_column(&self.name, &self.key, schema));
                None
            }
        }
    }
}

/// An "unknown column" issue: did-you-mean, else the columns that exist at this step.
pub fn unknown_column(name: &str, key: &str, schema: &Schema) -> Issue {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let help = match sluice_core::diagnostic::suggestion(name, names.iter().copied()) {
        Some(s) => s,
        None => format!("columns at this step: {}", names.join(", ")),
    };
    Issue::new(key, format!("there is no column `{name}` at this step")).with_help(help)
}

/// One operation.
#[derive(Debug, Clone)]
pub enum Op {
    /// Keep these columns, in this order.
    Select(Vec<ColRef>),
    /// Remove these columns.
    Drop(Vec<ColRef>),
    /// Rename columns (old → new).
    Rename(Vec<(ColRef, String)>),
    /// Convert column types.
    Cast(Cast),
    /// Remove rows with NULLs.
    DropNulls(DropNulls),
    /// Replace NULLs.
    FillNulls(FillNulls),
    /// Remove duplicate rows.
    Dedup(Dedup),
    /// Keep rows where an SQL expression is true.
    Filter(Filter),
    /// Trim or lowercase strings.
    Text(TextOp),
    /// Bound numeric values.
    Clip(Clip),
    /// Parse strings as timestamps.
    ParseTimestamp(ParseTimestamp),
    /// Replace the table with a query result.
    Sql(SqlStep),
}

impl Op {
    /// Whether the op can take a table whose removed rows are only marked (see
    /// [`super::table::Table::keep`]); every other op gets the remaining rows copied first.
    pub fn works_on_selection(&self) -> bool {
        matches!(
            self,
            Op::Select(_) | Op::Drop(_) | Op::Rename(_) | Op::DropNulls(_) | Op::Dedup(_) | Op::Filter(_)
        )
    }

    /// Whether the op can remove rows (and so send them to `rejects`).
    pub fn removes_rows(&self) -> bool {
        match self {
            Op::DropNulls(_) | Op::Dedup(_) | Op::Filter(_) => true,
            Op::Cast(c) => c.on_error.rejects(),
            Op::ParseTimestamp(p) => p.on_error.rejects(),
            _ => false,
        }
    }
}

/// One step: its position, op name, key path and operation.
#[derive(Debug, Clone)]
pub struct Step {
    /// Position in the sequence, from 0.
    pub index: usize,
    /// The op name (`filter`).
    pub name: &'static str,
    /// Key path of the op's value (`filter`, `steps.2.filter`).
    pub key: String,
    /// What it does.
    pub op: Op,
}

/// Reads the steps of a clean stage's config; problems come back as issues.
pub fn parse(config: &Map<String, Value>) -> (Vec<Step>, Vec<Issue>) {
    let mut steps = Vec::new();
    let mut issues = Vec::new();
    let op_keys: Vec<&String> = config.keys().filter(|k| OP_NAMES.contains(&k.as_str())).collect();
    match config.get("steps") {
        Some(list) => {
            for k in &op_keys {
                issues.push(
                    Issue::new(k.as_str(), format!("`{k}` is given both as a key and alongside `steps`"))
                        .with_help("a clean stage uses either operation keys or `steps = [...]`, not both; move it into `steps`"),
                );
            }
            let Some(items) = list.as_array() else {
                issues.push(Issue::new("steps", "`steps` must be an array of one-operation tables"));
                return (steps, issues);
            };
            for (i, item) in items.iter().enumerate() {
                let key = format!("steps.{i}");
                let table = match item.as_object() {
                    Some(t) if t.len() == 1 => t,
                    _ => {
                        issues.push(
                            Issue::new(&key, "each step must be a table with exactly one operation")
                                .with_help("write e.g. steps = [{ drop_nulls = [\"CustomerID\"] }, { dedup = true }]"),
                        );
                        continue;
                    }
                };
                for (name, value) in table {
                    push_step(&mut steps, &mut issues, name, value, &format!("{key}.{name}"), &key);
                }
            }
        }
        None => {
            for name in op_keys {
                if let Some(value) = config.get(name) {
                    push_step(&mut steps, &mut issues, name, value, name, name);
                }
            }
        }
    }
    if steps.is_empty() && issues.is_empty() {
        issues.push(
            Issue::new("", "a clean stage needs at least one operation")
                .with_help(format!("operations: {}", OP_NAMES.join(", "))),
        );
    }
    (steps, issues)
}

fn push_step(
    steps: &mut Vec<Step>,
    issues: &mut Vec<Issue>,
    name: &str,
    value: &Value,
    key: &str,
    name_key: &str,
) {
    let Some(&op_name) = OP_NAMES.iter().find(|n| **n == name) else {
        let help = sluice_core::diagnostic::suggestion(name, OP_NAMES.iter().copied())
            .unwrap_or_else(|| format!("operations: {}", OP_NAMES.join(", ")));
        issues.push(Issue::new(name_key, format!("unknown operation `{name}`")).with_help(help));
        return;
    };
    let parsed = match op_name {
        "select" => columns(value, key, "select").map(Op::Select),
        "drop" => columns(value, key, "drop").map(Op::Drop),
        "rename" => rename(value, key),
        "cast" => Cast::parse(value, key).map(Op::Cast),
        "drop_nulls" => DropNulls::parse(value, key).map(Op::DropNulls),
        "fill_nulls" => FillNulls::parse(value, key).map(Op::FillNulls),
        "dedup" => Dedup::parse(value, key).map(Op::Dedup),
        "filter" => Filter::parse(value, key).map(Op::Filter),
        "trim" | "lowercase" => TextOp::parse(op_name, value, key).map(Op::Text),
        "clip" => Clip::parse(value, key).map(Op::Clip),
        "parse_timestamp" => ParseTimestamp::parse(value, key).map(Op::ParseTimestamp),
        _ => SqlStep::parse(value, key).map(Op::Sql),
    };
    match parsed {
        Ok(op) => steps.push(Step { index: steps.len(), name: op_name, key: key.to_string(), op }),
        Err(mut found) => issues.append(&mut found),
    }
}

/// A non-empty list of column names (a single string is accepted as a list of one).
pub fn columns(value: &Value, key: &str, op: &str) -> Result<Vec<ColRef>, Vec<Issue>> {
    let list = match value {
        Value::String(s) => vec![ColRef::new(s.clone(), key)],
        Value::Array(items) => {
            let mut out = Vec::new();
            let mut issues = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(s) => out.push(ColRef::new(s, format!("{key}.{i}"))),
                    None => issues.push(Issue::new(
                        format!("{key}.{i}"),
                        format!("`{op}` lists column names (strings), found {item}"),
                    )),
                }
            }
            if !issues.is_empty() {
                return Err(issues);
            }
            out
        }
        other => {
            return Err(vec![
                Issue::new(key, format!("`{op}` takes a list of column names, found {other}"))
                    .with_help(format!("write e.g. {op} = [\"Description\"]")),
            ]);
        }
    };
    if list.is_empty() {
        return Err(vec![Issue::new(key, format!("`{op}` lists no columns"))]);
    }
    Ok(list)
}

/// A table of column → value, with each entry's key path.
pub fn column_table<'v>(
    value: &'v Value,
    key: &str,
    op: &str,
    example: &str,
) -> Result<Vec<(ColRef, &'v Value)>, Vec<Issue>> {
    match value.as_object() {
        Some(t) if !t.is_empty() => {
            Ok(t.iter().map(|(c, v)| (ColRef::new(c, format!("{key}.{c}")), v)).collect())
        }
        Some(_) => Err(vec![
            Issue::new(key, format!("`{op}` names no columns")).with_help(format!("write e.g. {example}")),
        ]),
        None => Err(vec![
            Issue::new(key, format!("`{op}` takes a table of columns, found {value}"))
                .with_help(format!("write e.g. {example}")),
        ]),
    }
}

fn rename(value: &Value, key: &str) -> Result<Op, Vec<Issue>> {
    let entries = column_table(value, key, "rename", "rename = { CustomerID = \"customer_id\" }")?;
    let mut out = Vec::new();
    let mut issues = Vec::new();
    for (col, v) in entries {
        match v.as_str() {
            Some(new) if !new.is_empty() => out.push((col, new.to_string())),
            _ => issues.push(Issue::new(
                &col.key,
                format!("the new name of `{}` must be a non-empty string, found {v}", col.name),
            )),
        }
    }
    if issues.is_empty() { Ok(Op::Rename(out)) } else { Err(issues) }
}

/// `on_error` of a conversion: what happens to a value that does not convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBad {
    /// Fail the stage, naming row and value.
    Fail,
    /// Make it NULL.
    Null,
    /// Remove the row (sent to `rejects` with `keep_rejects`).
    Reject,
}

impl OnBad {
    /// Reads `on_error` of a conversion table.
    pub fn parse(value: Option<&Value>, key: &str) -> Result<OnBad, Issue> {
        match value.map(|v| (v, v.as_str())) {
            None => Ok(OnBad::Fail),
            Some((_, Some("fail"))) => Ok(OnBad::Fail),
            Some((_, Some("null"))) => Ok(OnBad::Null),
            Some((_, Some("reject"))) => Ok(OnBad::Reject),
            Some((v, _)) => {
                Err(Issue::new(key, format!("`on_error` must be \"fail\", \"null\" or \"reject\", not {v}")))
            }
        }
    }

    /// Whether rows can be removed.
    pub fn rejects(self) -> bool {
        self == OnBad::Reject
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cfg(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn op_keys_apply_in_file_order() {
        let (steps, issues) =
            parse(&cfg(json!({"filter": "a > 0", "keep_rejects": true, "dedup": true, "drop_nulls": "any"})));
        assert!(issues.is_empty(), "{issues:?}");
        let names: Vec<_> = steps.iter().map(|s| (s.index, s.name, s.key.as_str())).collect();
        assert_eq!(names, [(0, "filter", "filter"), (1, "dedup", "dedup"), (2, "drop_nulls", "drop_nulls")]);
    }

    #[test]
    fn steps_allow_repeats_and_point_at_their_index() {
        let (steps, issues) =
            parse(&cfg(json!({"steps": [{"filter": "a > 0"}, {"dedup": true}, {"filter": "b > 0"}]})));
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(steps[2].key, "steps.2.filter");
        let (_, issues) =
            parse(&cfg(json!({"steps": [{"filter": "a > 0", "dedup": true}, {"fliter": "x"}]})));
        assert_eq!(issues[0].key, "steps.0");
        assert_eq!(issues[1].key, "steps.1");
        assert_eq!(issues[1].help.as_deref(), Some("did you mean `filter`?"));
    }

    #[test]
    fn op_keys_and_steps_do_not_mix_and_an_empty_stage_is_an_error() {
        let (_, issues) = parse(&cfg(json!({"dedup": true, "steps": []})));
        assert_eq!(issues[0].key, "dedup");
        let (_, issues) = parse(&cfg(json!({"keep_rejects": true})));
        assert_eq!(issues[0].message, "a clean stage needs at least one operation");
    }

    #[test]
    fn column_lists_point_at_the_bad_element() {
        let (_, issues) = parse(&cfg(json!({"select": ["a", 3]})));
        assert_eq!(issues[0].key, "select.1");
        let (_, issues) = parse(&cfg(json!({"drop": []})));
        assert_eq!(issues[0].message, "`drop` lists no columns");
        let (_, issues) = parse(&cfg(json!({"rename": {"a": ""}})));
        assert_eq!(issues[0].key, "rename.a");
    }
}
