//! One compile pass: TOML → spanned tree → every check → a [`Pipeline`], or all the
//! diagnostics at once so a user fixes every mistake in one go.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use indexmap::IndexMap;
use serde_json::{Map, Value};
use sluice_plugin::{KeySpec, KeyType};

use crate::diagnostic::{Diagnostic, SourceFile, suggestion};
use crate::graph;
use crate::interpolate::{Scope, interpolate};
use crate::node::{Node, NodeValue, Table, parse_document};
use crate::redact::Redactor;
use crate::registry::Registry;
use crate::spec::{DEFAULT_OUTPUT, InputRef, Param, Pipeline, StageSpec};

/// Inputs to compile besides the file.
pub struct CompileOptions<'a> {
    /// `--param NAME=VALUE` overrides, as typed.
    pub overrides: &'a [String],
    /// Environment lookup (injectable for tests).
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl CompileOptions<'_> {
    /// Options with no overrides, reading the process environment.
    pub fn from_env() -> CompileOptions<'static> {
        CompileOptions { overrides: &[], env: &|k| std::env::var(k).ok() }
    }
}

/// Top-level tables a pipeline file may have.
pub const TOP_LEVEL_KEYS: &[KeySpec] = &[
    KeySpec::required("pipeline", KeyType::Table, "Pipeline metadata: name, description, seed, schedule.")
        .example("[pipeline]"),
    KeySpec::optional("params", KeyType::Table, None, "Parameters, overridable with `--param NAME=VALUE`.")
        .example("[params]"),
    KeySpec::required("stages", KeyType::Table, "The stages, one table each: `[stages.NAME]`.")
        .example("[stages.orders]"),
];

/// Keys of the `[pipeline]` table.
pub const PIPELINE_KEYS: &[KeySpec] = &[
    KeySpec::required(
        "name",
        KeyType::String,
        "Pipeline name: letters, digits, `_`, `-`, `.`; groups runs and state.",
    )
    .example("name = \"repeat-buyers\""),
    KeySpec::optional(
        "description",
        KeyType::String,
        None,
        "Free text shown by `sluice plan` and in run records.",
    )
    .example("description = \"Predict which customers buy again\""),
    KeySpec::optional(
        "seed",
        KeyType::Integer,
        Some("42"),
        "Seed from which every random choice in the run derives.",
    )
    .example("seed = 42"),
    KeySpec::optional(
        "schedule",
        KeyType::String,
        None,
        "Cron expression (5 fields or @daily, ...), checked by `sluice validate`; no command runs schedules yet.",
    )
    .example("schedule = \"0 3 * * *\""),
    KeySpec::optional("timezone", KeyType::String, Some("\"UTC\""), "IANA timezone the schedule is read in.")
        .example("timezone = \"Europe/London\""),
];

/// Keys every stage accepts, whatever its kind.
pub const UNIVERSAL_STAGE_KEYS: &[KeySpec] = &[
    KeySpec::required(
        "kind",
        KeyType::String,
        "Stage kind: collect, feature-extract, ... (`sluice kinds` lists them).",
    )
    .example("kind = \"collect\""),
    KeySpec::optional(
        "inputs",
        KeyType::StringList,
        Some("[]"),
        "Upstream outputs: `NAME`, or `NAME.OUTPUT` for a named output.",
    )
    .example("inputs = [\"orders\", \"split.train\"]"),
    KeySpec::optional("description", KeyType::String, None, "Free text; not part of the cache key.")
        .example("description = \"Raw orders from the shop export\""),
    KeySpec::optional(
        "show",
        KeyType::Any,
        None,
        "Print the first N rows (`true` = 20) of this stage's output after `sluice run` (of each output, for a stage with only named outputs such as a split's `train` and `test`).",
    )
    .example("show = 10"),
];

const DEFAULT_SEED: u64 = 42;

/// Compiles a pipeline file. `Err` holds every error and warning found.
pub fn compile(
    file: &SourceFile,
    registry: &Registry,
    opts: &CompileOptions<'_>,
) -> Result<Pipeline, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let doc = match parse_document(&file.text) {
        Ok(doc) => doc,
        Err((message, span)) => {
            diags.push(syntax_error(file, &message, span));
            return Err(diags);
        }
    };
    let Some(root) = doc.as_table() else {
        return Err(vec![Diagnostic::error("toml-syntax", "expected a TOML document").in_file(&file.path)]);
    };
    let base_dir = file.path.parent().map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf);
    let base_dir = if base_dir.as_os_str().is_empty() { Path::new(".").to_path_buf() } else { base_dir };

    check_keys(file, root, TOP_LEVEL_KEYS, "the pipeline file", None, &mut diags);

    // [pipeline]
    let meta = root.get("pipeline").and_then(Node::as_table).cloned().unwrap_or_default();
    if let Some(p) = root.get("pipeline") {
        check_keys(file, &meta, PIPELINE_KEYS, "[pipeline]", Some(p), &mut diags);
    }
    let name = meta.get("name").and_then(Node::as_str).unwrap_or("").to_string();
    if let Some(n) = meta.get("name")
        && n.as_str().is_some_and(|s| !valid_pipeline_name(s))
    {
        diags.push(
            Diagnostic::error("bad-name", format!("invalid pipeline name {}", n.to_json()))
                .at(file, n.span.clone())
                .label("use letters, digits, `_`, `-` and `.`")
                .help("the name groups runs and state on disk, so it must be a plain word"),
        );
    }
    let seed = match meta.get("seed").map(|n| &n.value) {
        Some(NodeValue::Integer(i)) if *i >= 0 => *i as u64,
        Some(NodeValue::Integer(_)) => {
            if let Some(n) = meta.get("seed") {
                diags.push(
                    Diagnostic::error("bad-value", "`seed` must not be negative").at(file, n.span.clone()),
                );
            }
            DEFAULT_SEED
        }
        _ => DEFAULT_SEED,
    };
    let schedule = meta.get("schedule").and_then(Node::as_str).map(str::to_string);
    if let (Some(expr), Some(node)) = (&schedule, meta.get("schedule"))
        && let Err(e) = crate::cron::parse(expr)
    {
        diags.push(
            Diagnostic::error("bad-cron", format!("invalid cron schedule: {e}"))
                .at(file, node.span.clone())
                .label("not a valid cron expression")
                .help("5 fields: minute hour day-of-month month day-of-week, e.g. \"0 3 * * *\""),
        );
    }
    let timezone = meta.get("timezone").and_then(Node::as_str).map(str::to_string);
    let description = meta.get("description").and_then(Node::as_str).map(str::to_string);

    // [params] and --param overrides
    let params = compile_params(file, root, opts.overrides, &mut diags);

    // [stages]
    let mut stages = Vec::new();
    let mut secrets = Vec::new();
    let stage_table = root.get("stages").and_then(Node::as_table).cloned().unwrap_or_default();
    if let Some(st) = root.get("stages")
        && st.as_table().is_some_and(|t| t.entries.is_empty())
    {
        diags.push(
            Diagnostic::error("no-stages", "the pipeline has no stages")
                .at(file, st.span.clone())
                .help("add one, e.g. [stages.orders]\nkind = \"collect\""),
        );
    }
    let scope = Scope { params: &params, env: opts.env };
    for entry in &stage_table.entries {
        if let Some(stage) = compile_stage(file, entry, registry, &scope, &base_dir, &mut secrets, &mut diags)
        {
            stages.push(stage);
        }
    }

    // Inputs → edges, then the graph.
    resolve_inputs(file, &mut stages, &mut diags);
    let order = match graph::topo_order(&edges(&stages)) {
        Ok(order) => order,
        Err(cycle) => {
            let chain: Vec<&str> = cycle.iter().map(|&i| stages[i].name.as_str()).collect();
            // The chain reads in data-flow order, so the last step into the first stage is
            // one of its inputs: point there.
            let first = &stages[cycle[0]];
            let prev = &stages[cycle[cycle.len().saturating_sub(2)]].name;
            let span = first
                .inputs
                .iter()
                .find(|i| &i.stage == prev)
                .map_or(first.name_span.clone(), |i| i.span.clone());
            diags.push(
                Diagnostic::error("cycle", format!("cyclic dependency: {}", chain.join(" -> ")))
                    .at(file, span)
                    .label(format!("`{}` reads `{prev}`, which depends on `{}`", first.name, first.name))
                    .help("a stage cannot depend on its own output, directly or through others"),
            );
            Vec::new()
        }
    };

    // Semantic checks of each kind, only once its keys are sound.
    if diags.iter().all(|d| !d.is_error()) {
        for stage in &stages {
            if let Some(kind) = registry.kind(&stage.kind) {
                for issue in kind.check(stage, registry) {
                    diags.push(issue_diagnostic(file, stage, &issue));
                }
            }
        }
    }

    // Unused intermediate stages (only on an otherwise valid file: with errors, an "unused"
    // stage is usually the victim of a misspelled input).
    let has_errors = diags.iter().any(Diagnostic::is_error);
    let consumed: BTreeSet<&str> =
        stages.iter().flat_map(|s| s.inputs.iter().map(|i| i.stage.as_str())).collect();
    for stage in &stages {
        let is_result = registry.kind(&stage.kind).is_some_and(|k| k.is_result());
        if !has_errors && !consumed.contains(stage.name.as_str()) && !is_result && stage.show.is_none() {
            diags.push(
                Diagnostic::warning(
                    "unused-stage",
                    format!("stage `{}` is not used by any stage", stage.name),
                )
                .at(file, stage.name_span.clone())
                .label("its output is computed and cached, but nothing reads it")
                .help("use it in another stage's `inputs`, add `show = true`, or remove it"),
            );
        }
    }

    // A message may quote a value built from `${env.…}` (a path that matches no file).
    let redactor = Redactor::new(secrets);
    let diags: Vec<Diagnostic> = diags.into_iter().map(|d| d.redacted(&redactor)).collect();
    if diags.iter().any(Diagnostic::is_error) {
        return Err(diags);
    }
    let hash = pipeline_hash(file, &params);
    Ok(Pipeline {
        file: file.clone(),
        name,
        description,
        seed,
        schedule,
        timezone,
        params,
        stages,
        order,
        hash,
        warnings: diags,
        redactor,
    })
}

/// A stage kind's issue as a diagnostic, pointing inside a string value when it can.
pub fn issue_diagnostic(file: &SourceFile, stage: &StageSpec, issue: &crate::registry::Issue) -> Diagnostic {
    let span = stage.span_of(&issue.key);
    let span = match issue.at {
        Some(at) => {
            let start = crate::node::string_offset_in_file(&file.text, &span, at);
            // Underline the word at that position.
            let len = file.text.get(start..).map_or(1, |rest| {
                rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
                    .unwrap_or(rest.len())
                    .max(1)
            });
            start..start + len
        }
        None => span,
    };
    Diagnostic::error("bad-value", format!("stage `{}`: {}", stage.name, issue.message))
        .at(file, span)
        .maybe_help(issue.help.clone())
}

fn syntax_error(file: &SourceFile, message: &str, span: Option<std::ops::Range<usize>>) -> Diagnostic {
    let message = message.trim().trim_end_matches('.').to_string();
    let mut d = if message.contains("duplicate key") {
        let line_text = span
            .as_ref()
            .map(|s| file.line_text(file.line_col(s.start).0).trim().to_string())
            .unwrap_or_default();
        if let Some(name) = line_text.strip_prefix("[stages.").and_then(|r| r.strip_suffix(']')) {
            let name = name.trim().trim_matches('"').to_string();
            let first = file.text.find(&format!("[stages.{name}]")).map(|o| file.line_col(o).0);
            let mut d = Diagnostic::error("duplicate-stage", format!("duplicate stage `{name}`"))
                .label("a stage with this name is already defined")
                .help(
                    "stage names must be unique; rename one of them and update the `inputs` that refer to it",
                );
            if let Some(line) = first {
                d = d.note(format!("first defined on line {line}"));
            }
            d
        } else {
            Diagnostic::error("toml-syntax", format!("invalid TOML: {message}")).label("defined twice")
        }
    } else {
        Diagnostic::error("toml-syntax", format!("invalid TOML: {message}")).label("here")
    };
    d = match span {
        Some(span) => d.at(file, span),
        None => d.in_file(&file.path),
    };
    d
}

fn valid_pipeline_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn valid_stage_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks a table against declared keys: unknown keys (did you mean), types, required keys.
fn check_keys(
    file: &SourceFile,
    table: &Table,
    specs: &[KeySpec],
    what: &str,
    at: Option<&Node>,
    diags: &mut Vec<Diagnostic>,
) {
    for e in &table.entries {
        match specs.iter().find(|s| s.name == e.key) {
            None => {
                let names = specs.iter().map(|s| s.name);
                let help = suggestion(&e.key, names.clone()).unwrap_or_else(|| {
                    format!("known keys: {}", specs.iter().map(|s| s.name).collect::<Vec<_>>().join(", "))
                });
                diags.push(
                    Diagnostic::error("unknown-key", format!("unknown key `{}` in {what}", e.key))
                        .at(file, e.key_span.clone())
                        .label("unknown key")
                        .help(help),
                );
            }
            // `inputs` and `show` get their own, more specific messages in compile_stage.
            Some(spec) if what.starts_with("stage ") && matches!(spec.name, "inputs" | "show") => {}
            Some(spec) => {
                if !type_matches(spec.ty, &e.value) {
                    diags.push(
                        Diagnostic::error(
                            "wrong-type",
                            format!(
                                "`{}` in {what} must be {}, found {}",
                                e.key,
                                spec.ty.describe(),
                                e.value.type_name()
                            ),
                        )
                        .at(file, e.value.span.clone())
                        .label(format!("expected {}", spec.ty.describe())),
                    );
                }
            }
        }
    }
    for spec in specs.iter().filter(|s| s.required) {
        if table.get(spec.name).is_none() {
            let mut d =
                Diagnostic::error("missing-key", format!("{what} is missing required key `{}`", spec.name))
                    .help(format!("add `{} = ...` ({})", spec.name, spec.doc));
            d = match at {
                Some(node) => d.at(file, header_span(file, node)),
                None => d.at(file, 0..file.line_text(1).len()),
            };
            diags.push(d);
        }
    }
}

/// For a table node, the span of its `[header]` line when it has one, else the node span.
fn header_span(file: &SourceFile, node: &Node) -> std::ops::Range<usize> {
    let (line, _) = file.line_col(node.span.start);
    let text = file.line_text(line);
    let start = file.line_start(line);
    if text.trim_start().starts_with('[') {
        start..start + text.len()
    } else {
        node.span.start..node.span.start.max(node.span.end.min(start + text.len()))
    }
}

fn type_matches(ty: KeyType, node: &Node) -> bool {
    match (ty, &node.value) {
        (KeyType::Any, _) => true,
        (KeyType::String, NodeValue::String(_)) => true,
        (KeyType::Integer, NodeValue::Integer(_)) => true,
        (KeyType::Float, NodeValue::Float(_) | NodeValue::Integer(_)) => true,
        (KeyType::Bool, NodeValue::Bool(_)) => true,
        (KeyType::StringOrList, NodeValue::String(_)) => true,
        (KeyType::StringOrList | KeyType::StringList, NodeValue::Array(items)) => {
            items.iter().all(|i| matches!(i.value, NodeValue::String(_)))
        }
        (KeyType::Array, NodeValue::Array(_)) => true,
        (KeyType::Table, NodeValue::Table(_)) => true,
        // A string that interpolates a parameter may become any type; checked after.
        (_, NodeValue::String(s)) => s.contains("${params."),
        _ => false,
    }
}

fn json_matches(ty: KeyType, v: &Value) -> bool {
    match (ty, v) {
        (KeyType::Any, _) => true,
        (KeyType::String, Value::String(_)) => true,
        (KeyType::Integer, Value::Number(n)) => n.is_i64() || n.is_u64(),
        (KeyType::Float, Value::Number(_)) => true,
        (KeyType::Bool, Value::Bool(_)) => true,
        (KeyType::StringOrList, Value::String(_)) => true,
        (KeyType::StringOrList | KeyType::StringList, Value::Array(items)) => {
            items.iter().all(Value::is_string)
        }
        (KeyType::Array, Value::Array(_)) => true,
        (KeyType::Table, Value::Object(_)) => true,
        _ => false,
    }
}

fn compile_params(
    file: &SourceFile,
    root: &Table,
    overrides: &[String],
    diags: &mut Vec<Diagnostic>,
) -> IndexMap<String, Param> {
    let mut params = IndexMap::new();
    if let Some(node) = root.get("params")
        && let Some(t) = node.as_table()
    {
        for e in &t.entries {
            match &e.value.value {
                NodeValue::String(_) | NodeValue::Integer(_) | NodeValue::Float(_) | NodeValue::Bool(_) => {
                    params.insert(
                        e.key.clone(),
                        Param { value: e.value.to_json(), span: e.key_span.clone(), overridden: false },
                    );
                }
                _ => diags.push(
                    Diagnostic::error(
                        "wrong-type",
                        format!(
                            "parameter `{}` must be a string, integer, float or boolean, found {}",
                            e.key,
                            e.value.type_name()
                        ),
                    )
                    .at(file, e.value.span.clone())
                    .label("not a scalar"),
                ),
            }
        }
    }
    for raw in overrides {
        let Some((name, text)) = raw.split_once('=') else {
            diags.push(
                Diagnostic::error("bad-param", format!("`--param {raw}` is not NAME=VALUE"))
                    .help("write e.g. `--param horizon_days=60`"),
            );
            continue;
        };
        let name = name.trim();
        let Some(param) = params.get_mut(name) else {
            let known: Vec<&str> =
                root.get("params").and_then(Node::as_table).map(|t| t.keys().collect()).unwrap_or_default();
            let help = suggestion(name, known.iter().copied()).unwrap_or_else(|| {
                if known.is_empty() {
                    "the pipeline declares no [params]".to_string()
                } else {
                    format!("declared parameters: {}", known.join(", "))
                }
            });
            diags.push(
                Diagnostic::error(
                    "bad-param",
                    format!("`--param {name}`: no such parameter in {}", file.path.display()),
                )
                .help(help),
            );
            continue;
        };
        let parsed = match &param.value {
            Value::Number(n) if n.is_i64() => text.trim().parse::<i64>().ok().map(Value::from),
            Value::Number(_) => {
                text.trim().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number)
            }
            Value::Bool(_) => text.trim().parse::<bool>().ok().map(Value::from),
            _ => Some(Value::String(text.to_string())),
        };
        match parsed {
            Some(v) => {
                param.value = v;
                param.overridden = true;
            }
            None => {
                let ty = match &param.value {
                    Value::Number(n) if n.is_i64() => "an integer",
                    Value::Number(_) => "a number",
                    _ => "a boolean (true or false)",
                };
                diags.push(
                    Diagnostic::error("bad-param", format!("`--param {name}={text}`: `{name}` takes {ty}"))
                        .at(file, param.span.clone())
                        .label(format!("declared here as {ty}")),
                );
            }
        }
    }
    params
}

#[allow(clippy::too_many_arguments)]
fn compile_stage(
    file: &SourceFile,
    entry: &crate::node::Entry,
    registry: &Registry,
    scope: &Scope<'_>,
    base_dir: &Path,
    secrets: &mut Vec<String>,
    diags: &mut Vec<Diagnostic>,
) -> Option<StageSpec> {
    let name = entry.key.clone();
    let name_span = entry.key_span.clone();
    let what = format!("stage `{name}`");
    if !valid_stage_name(&name) {
        diags.push(
            Diagnostic::error("bad-name", format!("invalid stage name `{name}`"))
                .at(file, name_span.clone())
                .label("not usable as a table name")
                .help("stage names are SQL table names: letters, digits and `_`, not starting with a digit"),
        );
    }
    let Some(table) = entry.value.as_table() else {
        diags.push(
            Diagnostic::error(
                "wrong-type",
                format!("{what} must be a table, found {}", entry.value.type_name()),
            )
            .at(file, entry.value.span.clone())
            .help(format!("write it as [stages.{name}] with `kind = ...` below")),
        );
        return None;
    };
    let known_kinds = || registry.kinds().iter().map(|k| k.name()).collect::<Vec<_>>().join(", ");
    let kind = match table.get("kind") {
        None => {
            diags.push(
                Diagnostic::error("missing-kind", format!("{what} has no `kind`"))
                    .at(file, header_span(file, &entry.value))
                    .help(format!("add `kind = \"...\"`; known kinds: {}", known_kinds())),
            );
            None
        }
        Some(k) => match k.as_str() {
            None => {
                diags.push(
                    Diagnostic::error(
                        "wrong-type",
                        format!("`kind` of {what} must be a string, found {}", k.type_name()),
                    )
                    .at(file, k.span.clone()),
                );
                None
            }
            Some(kname) => match registry.kind(kname) {
                Some(kind) => Some(kind.clone()),
                None => {
                    let help = match suggestion(kname, registry.kinds().iter().map(|k| k.name())) {
                        Some(s) => format!("{s} (known kinds: {})", known_kinds()),
                        None => format!("known kinds: {}", known_kinds()),
                    };
                    diags.push(
                        Diagnostic::error("unknown-kind", format!("unknown stage kind `{kname}` in {what}"))
                            .at(file, k.span.clone())
                            .label("unknown kind")
                            .help(help),
                    );
                    None
                }
            },
        },
    };

    // Interpolate the stage table (except its structure keys).
    let interp = interpolate(&entry.value, scope, file);
    secrets.extend(interp.secrets);
    diags.extend(interp.errors);
    let mut config = match interp.value {
        Value::Object(m) => m,
        _ => Map::new(),
    };

    let mut inputs = Vec::new();
    if let Some(node) = table.get("inputs") {
        match &node.value {
            NodeValue::Array(items) => {
                for item in items {
                    match item.as_str() {
                        Some(text) => {
                            let (stage, output) = match text.split_once('.') {
                                Some((s, o)) => (s.to_string(), o.to_string()),
                                None => (text.to_string(), DEFAULT_OUTPUT.to_string()),
                            };
                            inputs.push(InputRef {
                                stage,
                                output,
                                text: text.to_string(),
                                span: item.span.clone(),
                            });
                        }
                        None => diags.push(
                            Diagnostic::error(
                                "wrong-type",
                                format!(
                                    "inputs of {what} must be stage names (strings), found {}",
                                    item.type_name()
                                ),
                            )
                            .at(file, item.span.clone()),
                        ),
                    }
                }
            }
            _ => diags.push(
                Diagnostic::error(
                    "wrong-type",
                    format!("`inputs` of {what} must be an array of strings, found {}", node.type_name()),
                )
                .at(file, node.span.clone())
                .help("write e.g. inputs = [\"orders\"]"),
            ),
        }
    }
    let description = table.get("description").and_then(Node::as_str).map(str::to_string);
    let show = match config.get("show") {
        None => None,
        Some(Value::Bool(true)) => Some(20),
        Some(Value::Bool(false)) => None,
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64().map(|n| n as usize),
        Some(other) => {
            diags.push(
                Diagnostic::error(
                    "wrong-type",
                    format!("`show` of {what} must be true or a row count, found {other}"),
                )
                .at(file, table.get("show").map_or(name_span.clone(), |n| n.span.clone())),
            );
            None
        }
    };
    for key in ["kind", "inputs", "description", "show"] {
        config.shift_remove(key);
    }

    let kind = kind?;
    // Keys: universal + the kind's, then types after interpolation.
    if let Some(mut specs) = kind.keys(&config, registry) {
        let mut all = UNIVERSAL_STAGE_KEYS.to_vec();
        all.append(&mut specs);
        check_keys(file, table, &all, &what, Some(&entry.value), diags);
        for spec in &all {
            if let (Some(v), Some(node)) = (config.get(spec.name), table.get(spec.name))
                && type_matches(spec.ty, node)
                && !json_matches(spec.ty, v)
            {
                diags.push(
                    Diagnostic::error(
                        "wrong-type",
                        format!(
                            "`{}` of {what} must be {}, but it interpolates to {v}",
                            spec.name,
                            spec.ty.describe()
                        ),
                    )
                    .at(file, node.span.clone()),
                );
            }
        }
    }
    let arity = kind.arity();
    let inputs_malformed = table.get("inputs").is_some_and(|n| n.as_array().is_none());
    if !inputs_malformed && inputs.len() < arity.min || arity.max.is_some_and(|m| inputs.len() > m) {
        let expected = match arity.max {
            Some(0) => "no inputs".to_string(),
            Some(max) if max == arity.min => {
                format!("exactly {max} input{}", if max == 1 { "" } else { "s" })
            }
            Some(max) => format!("{}–{max} inputs", arity.min),
            None => format!("at least {} input{}", arity.min, if arity.min == 1 { "" } else { "s" }),
        };
        let span = table.get("inputs").map_or_else(|| header_span(file, &entry.value), |n| n.span.clone());
        diags.push(
            Diagnostic::error(
                "wrong-inputs",
                format!("a `{}` stage takes {expected}; {what} has {}", kind.name(), inputs.len()),
            )
            .at(file, span)
            .help(if arity.max == Some(0) {
                "remove `inputs`; this kind reads from outside the pipeline".to_string()
            } else {
                "list upstream stages in `inputs = [\"...\"]`".to_string()
            }),
        );
    }
    let outputs = kind.outputs(&config);
    let config_hash =
        stage_config_hash(kind.name(), &kind.implementation_version(&config, registry), &config, &inputs);
    Some(StageSpec {
        name,
        name_span,
        kind: kind.name().to_string(),
        inputs,
        config,
        node: entry.value.clone(),
        file: file.clone(),
        outputs,
        description,
        show,
        base_dir: base_dir.to_path_buf(),
        config_hash,
    })
}

/// blake3 over the canonical stage config: what decides whether a cached output still fits.
fn stage_config_hash(kind: &str, version: &str, config: &Map<String, Value>, inputs: &[InputRef]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(kind.as_bytes()).update(b"\0").update(version.as_bytes()).update(b"\0");
    h.update(serde_json::to_string(config).unwrap_or_default().as_bytes());
    for i in inputs {
        h.update(b"\0").update(i.text.as_bytes());
    }
    h.finalize().to_hex().to_string()
}

fn pipeline_hash(file: &SourceFile, params: &IndexMap<String, Param>) -> String {
    let mut h = blake3::Hasher::new();
    h.update(file.text.as_bytes());
    for (k, p) in params {
        h.update(k.as_bytes()).update(b"=").update(p.value.to_string().as_bytes()).update(b"\n");
    }
    h.finalize().to_hex()[..16].to_string()
}

fn resolve_inputs(file: &SourceFile, stages: &mut [StageSpec], diags: &mut Vec<Diagnostic>) {
    let outputs: HashMap<String, Vec<String>> =
        stages.iter().map(|s| (s.name.clone(), s.outputs.clone())).collect();
    let names: Vec<String> = stages.iter().map(|s| s.name.clone()).collect();
    for stage in stages.iter_mut() {
        for input in &stage.inputs {
            match outputs.get(&input.stage) {
                None => {
                    let help = suggestion(&input.stage, names.iter().map(String::as_str))
                        .unwrap_or_else(|| format!("stages in this file: {}", names.join(", ")));
                    diags.push(
                        Diagnostic::error(
                            "unknown-input",
                            format!(
                                "stage `{}` reads `{}`, but there is no stage `{}`",
                                stage.name, input.text, input.stage
                            ),
                        )
                        .at(file, input.span.clone())
                        .label("no such stage")
                        .help(help),
                    );
                }
                Some(outs) if !outs.contains(&input.output) => {
                    let listed =
                        outs.iter().map(|o| format!("`{}.{o}`", input.stage)).collect::<Vec<_>>().join(", ");
                    let (message, help) = if input.output == DEFAULT_OUTPUT {
                        (
                            format!(
                                "stage `{}` has several outputs; say which one `{}` reads",
                                input.stage, stage.name
                            ),
                            format!("use one of {listed}"),
                        )
                    } else {
                        (
                            format!("stage `{}` has no output `{}`", input.stage, input.output),
                            suggestion(&input.output, outs.iter().map(String::as_str))
                                .map(|s| format!("{s} (outputs: {listed})"))
                                .unwrap_or_else(|| format!("its outputs: {listed}")),
                        )
                    };
                    diags.push(
                        Diagnostic::error("unknown-output", message)
                            .at(file, input.span.clone())
                            .label("no such output")
                            .help(help),
                    );
                }
                Some(_) => {}
            }
        }
    }
}

fn edges(stages: &[StageSpec]) -> Vec<Vec<usize>> {
    let index: HashMap<&str, usize> = stages.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    stages
        .iter()
        .map(|s| {
            let mut ups: Vec<usize> =
                s.inputs.iter().filter_map(|i| index.get(i.stage.as_str()).copied()).collect();
            ups.dedup();
            ups
        })
        .collect()
}
