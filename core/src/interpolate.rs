//! `${params.NAME}` and `${env.NAME}` in string values.
//!
//! A string that is exactly one `${params.NAME}` takes the parameter's typed value (so
//! `test_fraction = "${params.frac}"` stays a number); otherwise the value is spliced into
//! the text. `${env.NAME:-default}` gives a default; `$${` writes a literal `${`. Values that
//! came from the environment are collected as secrets for the [`crate::redact::Redactor`].

use std::ops::Range;

use indexmap::IndexMap;
use serde_json::Value;

use crate::diagnostic::{Diagnostic, SourceFile, suggestion};
use crate::node::{Node, NodeValue};
use crate::spec::Param;

/// Where interpolated values come from.
pub struct Scope<'a> {
    /// Declared parameters.
    pub params: &'a IndexMap<String, Param>,
    /// Environment lookup.
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// Result of interpolating one node tree.
#[derive(Debug, Default)]
pub struct Interpolated {
    /// The value with every reference replaced.
    pub value: Value,
    /// Problems, pointing at the reference.
    pub errors: Vec<Diagnostic>,
    /// Environment values used (secrets).
    pub secrets: Vec<String>,
}

/// Interpolates every string inside `node`.
pub fn interpolate(node: &Node, scope: &Scope<'_>, file: &SourceFile) -> Interpolated {
    let mut out = Interpolated::default();
    out.value = walk(node, scope, file, &mut out.errors, &mut out.secrets);
    out
}

fn walk(
    node: &Node,
    scope: &Scope<'_>,
    file: &SourceFile,
    errors: &mut Vec<Diagnostic>,
    secrets: &mut Vec<String>,
) -> Value {
    match &node.value {
        NodeValue::String(s) => interpolate_str(s, node.span.clone(), scope, file, errors, secrets),
        NodeValue::Array(items) => {
            Value::Array(items.iter().map(|n| walk(n, scope, file, errors, secrets)).collect())
        }
        NodeValue::Table(t) => Value::Object(
            t.entries.iter().map(|e| (e.key.clone(), walk(&e.value, scope, file, errors, secrets))).collect(),
        ),
        _ => node.to_json(),
    }
}

/// Narrows a diagnostic span to the `${...}` token when it can be found in the raw text.
fn token_span(file: &SourceFile, span: &Range<usize>, token: &str) -> Range<usize> {
    file.text
        .get(span.clone())
        .and_then(|raw| raw.find(token))
        .map_or(span.clone(), |i| span.start + i..span.start + i + token.len())
}

fn interpolate_str(
    s: &str,
    span: Range<usize>,
    scope: &Scope<'_>,
    file: &SourceFile,
    errors: &mut Vec<Diagnostic>,
    secrets: &mut Vec<String>,
) -> Value {
    if !s.contains("${") {
        return Value::String(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut whole: Option<Value> = None;
    while let Some(i) = rest.find("${") {
        if rest[..i].ends_with('$') {
            // `$${` is an escaped literal `${`.
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            errors.push(
                Diagnostic::error("bad-interpolation", "unterminated `${` in string")
                    .at(file, token_span(file, &span, &rest[i..]))
                    .label("no closing `}`")
                    .help("write `${params.NAME}` or `${env.NAME}`; `$${` gives a literal `${`"),
            );
            return Value::String(s.to_string());
        };
        let inner = &after[..end];
        let token = &rest[i..i + 2 + end + 1];
        let tspan = token_span(file, &span, token);
        let is_whole = i == 0 && out.is_empty() && after[end + 1..].is_empty();
        let resolved: Option<Value> = if let Some(name) = inner.strip_prefix("params.") {
            match scope.params.get(name) {
                Some(p) => Some(p.value.clone()),
                None => {
                    errors.push(
                        Diagnostic::error("undefined-param", format!("undefined parameter `{name}`"))
                            .at(file, tspan)
                            .label("not declared in [params]")
                            .maybe_help(
                                suggestion(name, scope.params.keys().map(String::as_str)).or_else(|| {
                                    Some(format!("declare it under [params], e.g. `{name} = ...`"))
                                }),
                            ),
                    );
                    None
                }
            }
        } else if let Some(spec) = inner.strip_prefix("env.") {
            let (name, default) = match spec.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (spec, None),
            };
            match ((scope.env)(name), default) {
                (Some(v), _) => {
                    secrets.push(v.clone());
                    Some(Value::String(v))
                }
                (None, Some(d)) => Some(Value::String(d.to_string())),
                (None, None) => {
                    errors.push(
                        Diagnostic::error(
                            "undefined-env",
                            format!("environment variable `{name}` is not set"),
                        )
                        .at(file, tspan)
                        .label("not set")
                        .help(format!("set it before running, or give a default: `${{env.{name}:-VALUE}}`")),
                    );
                    None
                }
            }
        } else {
            errors.push(
                Diagnostic::error("bad-interpolation", format!("unknown reference `${{{inner}}}`"))
                    .at(file, tspan)
                    .label("expected `params.NAME` or `env.NAME`")
                    .help("write `${params.NAME}` or `${env.NAME}`; `$${` gives a literal `${`"),
            );
            None
        };
        let Some(value) = resolved else {
            return Value::String(s.to_string());
        };
        if is_whole {
            whole = Some(value);
        } else {
            match &value {
                Value::String(v) => out.push_str(v),
                other => out.push_str(&other.to_string()),
            }
        }
        rest = &after[end + 1..];
    }
    if let Some(v) = whole {
        return v;
    }
    out.push_str(rest);
    Value::String(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::parse_document;

    fn run(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Interpolated {
        let file = SourceFile::new("p.toml", text);
        let doc = parse_document(text).unwrap();
        let mut params = IndexMap::new();
        params.insert("n".to_string(), Param { value: Value::from(3), span: 0..0, overridden: false });
        params.insert("who".to_string(), Param { value: Value::from("bob"), span: 0..0, overridden: false });
        let node = doc.as_table().unwrap().get("v").unwrap().clone();
        interpolate(&node, &Scope { params: &params, env }, &file)
    }

    #[test]
    fn whole_reference_keeps_type_and_partial_splices() {
        let none = |_: &str| None;
        assert_eq!(run("v = \"${params.n}\"", &none).value, Value::from(3));
        assert_eq!(run("v = \"top ${params.n} by ${params.who}\"", &none).value, "top 3 by bob");
        assert_eq!(run("v = \"cost $${x}\"", &none).value, "cost ${x}");
    }

    #[test]
    fn env_values_are_secrets_and_defaults_apply() {
        let env = |k: &str| (k == "PW").then(|| "s3cret!".to_string());
        let r = run("v = \"pg://u:${env.PW}@h/${env.DB:-test}\"", &env);
        assert_eq!(r.value, "pg://u:s3cret!@h/test");
        assert_eq!(r.secrets, ["s3cret!"]);
    }

    #[test]
    fn undefined_reference_points_at_token() {
        let none = |_: &str| None;
        let r = run("v = \"a ${params.nn} b\"", &none);
        assert_eq!(r.errors.len(), 1);
        let (_, line, col) = r.errors[0].location().unwrap();
        assert_eq!((line, col), (1, 8));
        assert_eq!(r.errors[0].help.as_deref(), Some("did you mean `n`?"));
    }
}
