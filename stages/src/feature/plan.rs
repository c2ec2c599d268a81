//! What a feature-extract stage was asked to do: one `sql` query, or a list of declarative
//! transforms — given as keys of the stage table (applied in the order written) or as
//! `steps = [{ ... }, ...]`. Parsing collects every mistake as an [`Issue`] at its key.

use serde_json::{Map, Value};
use sluice_core::diagnostic::suggestion;
use sluice_core::registry::Issue;

use super::aggregate::{GroupBy, Interactions};
use super::config::{At, join};
use super::datetime::Datetime;
use super::derive::Derive;
use super::encode::{Bucketize, Hash, OneHot};
use super::scale::Scale;
use super::step::Transform;
use super::tfidf::Tfidf;
use super::window::{Lags, Rolling};

/// Keys that name a transform (`group_by` and `aggregations` form one together).
pub(crate) const TRANSFORMS: &[&str] = &[
    "derive",
    "datetime",
    "bucketize",
    "one_hot",
    "hash",
    "scale",
    "group_by",
    "aggregations",
    "lags",
    "rolling",
    "interactions",
    "tfidf",
];

/// A transform and the key path it was configured at.
#[derive(Debug)]
pub(crate) struct Step {
    /// Where it is configured (`derive`, `steps.2.one_hot`).
    pub key: String,
    /// The transform.
    pub transform: Box<dyn Transform>,
}

/// The stage's work.
#[derive(Debug)]
pub(crate) enum Plan {
    /// A query over the inputs.
    Sql(String),
    /// Transforms over the first input, in order.
    Steps(Vec<Step>),
}

/// Builds the transform named `name` from the table `scope` (the stage table, or one entry
/// of `steps`) whose key path is `prefix`.
fn transform(name: &str, scope: &Map<String, Value>, prefix: &str) -> Result<Step, Issue> {
    let at_key = |k: &str| scope.get(k).map(|v| At::new(join(prefix, k), v));
    let Some(at) = at_key(name) else {
        return Err(Issue::new(prefix, format!("`{name}` is missing")));
    };
    let transform: Box<dyn Transform> = match name {
        "derive" => Box::new(Derive::parse(&at)?),
        "datetime" => Box::new(Datetime::parse(&at)?),
        "bucketize" => Box::new(Bucketize::parse(&at)?),
        "one_hot" => Box::new(OneHot::parse(&at)?),
        "hash" => Box::new(Hash::parse(&at)?),
        "scale" => Box::new(Scale::parse(&at)?),
        "group_by" | "aggregations" => {
            let g = at_key("group_by");
            let a = at_key("aggregations");
            Box::new(GroupBy::parse(g.as_ref(), a.as_ref(), &at.key)?)
        }
        "lags" => Box::new(Lags::parse(&at)?),
        "rolling" => Box::new(Rolling::parse(&at)?),
        "interactions" => Box::new(Interactions::parse(&at)?),
        "tfidf" => Box::new(Tfidf::parse(&at)?),
        other => return Err(Issue::new(join(prefix, other), format!("unknown transform `{other}`"))),
    };
    Ok(Step { key: at.key, transform })
}

/// Reads the stage config.
pub(crate) fn parse(config: &Map<String, Value>) -> Result<Plan, Vec<Issue>> {
    let keyed: Vec<&str> = config.keys().map(String::as_str).filter(|k| TRANSFORMS.contains(k)).collect();
    let steps = config.get("steps");
    if let Some(sql) = config.get("sql") {
        if steps.is_some() || !keyed.is_empty() {
            let other = if steps.is_some() { "steps" } else { keyed[0] };
            return Err(vec![
                Issue::new("sql", format!("`sql` and transforms (`{other}`) cannot be combined in one stage"))
                    .with_help("put the transforms in a stage of their own that reads this one, or write them in the query"),
            ]);
        }
        return match sql.as_str() {
            Some(s) => Ok(Plan::Sql(s.to_string())),
            None => Err(vec![Issue::new("sql", "`sql` must be a string")]),
        };
    }
    if steps.is_some() && !keyed.is_empty() {
        return Err(vec![
            Issue::new(
                keyed[0],
                format!("`{}` is written as a key, but this stage also has `steps`", keyed[0]),
            )
            .with_help("write every transform inside `steps = [...]`, or none"),
        ]);
    }
    let mut out = Vec::new();
    let mut issues = Vec::new();
    match steps {
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let prefix = format!("steps.{i}");
                let Some(scope) = item.as_object() else {
                    issues.push(Issue::new(prefix, "each step must be a table, e.g. { derive = { ... } }"));
                    continue;
                };
                let names: Vec<&str> = scope.keys().map(String::as_str).collect();
                if let Some(bad) = names.iter().find(|n| !TRANSFORMS.contains(n)) {
                    let help = suggestion(bad, TRANSFORMS.iter().copied())
                        .unwrap_or_else(|| format!("transforms: {}", TRANSFORMS.join(", ")));
                    issues.push(
                        Issue::new(join(&prefix, bad), format!("unknown transform `{bad}`")).with_help(help),
                    );
                    continue;
                }
                let grouped = names.iter().all(|n| matches!(*n, "group_by" | "aggregations"));
                if names.is_empty() || (names.len() > 1 && !grouped) {
                    issues.push(
                        Issue::new(prefix, "each step holds exactly one transform")
                            .with_help("split it into several entries of `steps`"),
                    );
                    continue;
                }
                match transform(names[0], scope, &format!("steps.{i}")) {
                    Ok(s) => out.push(s),
                    Err(e) => issues.push(e),
                }
            }
        }
        Some(_) => issues.push(Issue::new("steps", "`steps` must be an array of tables")),
        None => {
            let mut grouped = false;
            for name in keyed {
                if matches!(name, "group_by" | "aggregations") {
                    if grouped {
                        continue;
                    }
                    grouped = true;
                }
                match transform(name, config, "") {
                    Ok(s) => out.push(s),
                    Err(e) => issues.push(e),
                }
            }
        }
    }
    if issues.is_empty() && out.is_empty() {
        issues.push(
            Issue::new("kind", "a feature-extract stage needs `sql` or at least one transform").with_help(
                format!("add `sql = \"SELECT ...\"`, or transforms such as {}", TRANSFORMS.join(", ")),
            ),
        );
    }
    if issues.is_empty() { Ok(Plan::Steps(out)) } else { Err(issues) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ops(v: serde_json::Value) -> Vec<(String, &'static str)> {
        match parse(v.as_object().unwrap()).unwrap() {
            Plan::Steps(s) => s.into_iter().map(|s| (s.key, s.transform.op())).collect(),
            Plan::Sql(_) => panic!("expected steps"),
        }
    }

    fn issues(v: serde_json::Value) -> Vec<Issue> {
        parse(v.as_object().unwrap()).unwrap_err()
    }

    #[test]
    fn keys_apply_in_file_order_and_group_by_pairs_with_aggregations() {
        let got = ops(json!({
            "derive": { "amount": "a * b" },
            "aggregations": { "m": { "sum": "amount" } },
            "hash": { "x": 8 },
            "group_by": ["c"],
        }));
        assert_eq!(
            got,
            [("derive".into(), "derive"), ("aggregations".into(), "group_by"), ("hash".into(), "hash")]
        );
        let got = ops(
            json!({ "steps": [{ "hash": { "x": 8 } }, { "group_by": [], "aggregations": { "n": { "count": "*" } } }, { "hash": { "y": 2 } }] }),
        );
        assert_eq!(
            got,
            [
                ("steps.0.hash".into(), "hash"),
                ("steps.1.group_by".into(), "group_by"),
                ("steps.2.hash".into(), "hash")
            ]
        );
    }

    #[test]
    fn sql_and_transforms_do_not_mix() {
        let i = issues(json!({ "sql": "SELECT 1", "derive": { "a": "1" } }));
        assert_eq!(i[0].key, "sql");
        assert!(i[0].message.contains("cannot be combined"));
        let i = issues(json!({ "steps": [], "derive": { "a": "1" } }));
        assert_eq!(i[0].key, "derive");
        let i = issues(json!({}));
        assert!(i[0].message.contains("needs `sql`"));
    }

    #[test]
    fn every_bad_step_is_reported_at_its_index() {
        let i = issues(json!({ "steps": [
            { "one_hott": { "c": { "top": 3 } } },
            { "hash": { "x": 8 }, "scale": { "y": "standard" } },
            { "group_by": ["c"] },
            { "one_hot": { "Country": { "top": 0 } } },
        ] }));
        let keys: Vec<&str> = i.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["steps.0.one_hott", "steps.1", "steps.2.group_by", "steps.3.one_hot.Country.top"]);
        assert_eq!(i[0].help.as_deref(), Some("did you mean `one_hot`?"));
    }
}
