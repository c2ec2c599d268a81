//! One function per subcommand: call the library, render the result.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use serde_json::json;
use sluice_core::executor::{ExecOptions, execute};
use sluice_core::gc::{GcOptions, gc};
use sluice_core::graph::{GraphFormat, render};
use sluice_core::observer::{RecordWriter, RunObserver};
use sluice_core::plan::{Action, Plan, PlanOptions, plan};
use sluice_core::record::{CacheStatus, RunRecord, RunStatus, RunStore, StageStatus};
use sluice_core::schema::{Probe, Recorded, SourceSchemas, derive_pipeline};
use sluice_core::state::{StateLock, resolve_state_dir};
use sluice_core::{CompileOptions, CoreError, Diagnostic, Pipeline, Registry, SourceFile, compile};

use crate::Outcome;
use crate::cli::{Cli, Command, GraphFormatArg, RunArgs};
use crate::console::{errln, out, outln};
use crate::output::{duration, table, thousands};

/// `-q`: diagnostics that are not errors stay unprinted.
static QUIET: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Runs the chosen subcommand.
pub fn dispatch(cli: Cli) -> Outcome {
    let state_dir = resolve_state_dir(cli.state_dir.as_deref());
    let quiet = cli.quiet;
    let _ = QUIET.set(quiet);
    match cli.command {
        Command::Validate { files, params, json, data } => validate(&files, &params, json, data, &state_dir),
        Command::Run(args) => run(&args, &state_dir, quiet, cli.state_dir.as_deref()),
        Command::Plan { file, params, force, force_all, stage, with_deps, json } => {
            let opts = PlanOptions { force, force_all, only: stage, with_deps };
            plan_cmd(&file, &params, &opts, &state_dir, json)
        }
        Command::Graph { file, format } => graph(&file, format),
        Command::Kinds { json } => kinds(json),
        Command::Runs { pipeline, limit, json } => runs(&state_dir, pipeline.as_deref(), limit, json),
        Command::Show { run, json } => show(&state_dir, &run, json),
        Command::Gc { keep_runs, dry_run, json } => gc_cmd(&state_dir, keep_runs, dry_run, json),
    }
}

fn print_diagnostics(diags: &[Diagnostic]) {
    let quiet = QUIET.get().copied().unwrap_or(false);
    let mut err = std::io::stderr().lock();
    for d in diags.iter().filter(|d| d.is_error() || !quiet) {
        let _ = writeln!(err, "{}", d.render());
    }
}

fn core_error(e: &CoreError) -> Outcome {
    errln!("error: {e}");
    if e.is_usage() { Outcome::Invalid } else { Outcome::Failed }
}

/// Reads and compiles a pipeline file. `Err` carries every diagnostic.
fn load(file: &Path, params: &[String], registry: &Registry) -> Result<Pipeline, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        vec![
            Diagnostic::error("unreadable-file", format!("cannot read {}: {e}", file.display()))
                .in_file(file),
        ]
    })?;
    let source = SourceFile::new(file, text);
    let env = |k: &str| std::env::var(k).ok();
    compile(&source, registry, &CompileOptions { overrides: params, env: &env })
}

/// Loads a pipeline and prints its warnings; on failure prints diagnostics.
/// [`load`], with the diagnostics on stderr; with `json`, an invalid file is also described
/// on stdout (`status` "invalid" and the diagnostics), where a machine reads the output.
fn load_or_report(file: &Path, params: &[String], registry: &Registry, json: bool) -> Option<Pipeline> {
    match load(file, params, registry) {
        Ok(p) => {
            print_diagnostics(&p.warnings);
            Some(p)
        }
        Err(diags) => {
            print_diagnostics(&diags);
            if json {
                let report = json!({
                    "file": file.display().to_string(),
                    "status": "invalid",
                    "diagnostics": diags.iter().map(Diagnostic::to_json).collect::<Vec<_>>(),
                });
                outln!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            }
            let n = diags.iter().filter(|d| d.is_error()).count();
            errln!("{}: {n} error{} found; nothing was run", file.display(), if n == 1 { "" } else { "s" });
            None
        }
    }
}

fn validate(files: &[PathBuf], params: &[String], as_json: bool, data: bool, state_dir: &Path) -> Outcome {
    let registry = sluice_stages::registry();
    let mut all_ok = true;
    let mut reports = Vec::new();
    for file in files {
        let (ok, diags) = match load(file, params, &registry) {
            Ok(p) => {
                // Column names and types against the schemas known without running: declared,
                // recorded by the last run, or (with --data) read from the sources.
                let recorded = Recorded::load(state_dir, &p.name);
                let probe = Probe { registry: &registry };
                let sources: &dyn SourceSchemas = if data { &probe } else { &recorded };
                let (_, schema_diags) = derive_pipeline(&p, &registry, sources);
                let schema_diags: Vec<Diagnostic> =
                    schema_diags.into_iter().map(|d| d.redacted(&p.redactor)).collect();
                let ok = schema_diags.iter().all(|d| !d.is_error());
                let mut diags = p.warnings;
                diags.extend(schema_diags);
                (ok, diags)
            }
            Err(d) => (false, d),
        };
        all_ok &= ok;
        if as_json {
            reports.push(json!({
                "file": file.display().to_string(),
                "valid": ok,
                "diagnostics": diags.iter().map(Diagnostic::to_json).collect::<Vec<_>>(),
            }));
        } else {
            print_diagnostics(&diags);
            if ok {
                outln!("{}: valid", file.display());
            } else {
                let n = diags.iter().filter(|d| d.is_error()).count();
                errln!("{}: {n} error{}", file.display(), if n == 1 { "" } else { "s" });
            }
        }
    }
    if as_json {
        outln!("{}", serde_json::to_string_pretty(&reports).unwrap_or_default());
    }
    if all_ok { Outcome::Ok } else { Outcome::Invalid }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn resume_command(args: &RunArgs, state_flag: Option<&Path>) -> String {
    let mut parts =
        vec!["sluice".to_string(), "run".to_string(), shell_quote(&args.file.display().to_string())];
    for p in &args.params {
        parts.push("--param".into());
        parts.push(shell_quote(p));
    }
    if let Some(s) = &args.stage {
        parts.push("--stage".into());
        parts.push(shell_quote(s));
        if args.with_deps {
            parts.push("--with-deps".into());
        }
    }
    if let Some(dir) = state_flag {
        parts.push("--state-dir".into());
        parts.push(shell_quote(&dir.display().to_string()));
    }
    parts.join(" ")
}

fn run(args: &RunArgs, state_dir: &Path, quiet: bool, state_flag: Option<&Path>) -> Outcome {
    let registry = sluice_stages::registry();
    let Some(pipeline) = load_or_report(&args.file, &args.params, &registry, args.json) else {
        return Outcome::Invalid;
    };
    let opts = PlanOptions {
        force: args.force.clone(),
        force_all: args.force_all,
        only: args.stage.clone(),
        with_deps: args.with_deps,
    };
    let plan = match plan(&pipeline, &registry, state_dir, &opts) {
        Ok(p) => p,
        Err(e) => return core_error(&e),
    };
    let mut exec = ExecOptions { resume_command: resume_command(args, state_flag), ..ExecOptions::default() };
    if let Some(j) = args.jobs {
        exec.jobs = j.max(1);
    }
    if let Some(mib) = args.memory_budget {
        exec.memory_budget = mib.saturating_mul(1 << 20);
    }
    let writer = RecordWriter::new(state_dir);
    let progress =
        (!quiet && !args.json && std::io::stderr().is_terminal()).then(crate::progress::Progress::new);
    let mut observers: Vec<&dyn RunObserver> = vec![&writer];
    if let Some(p) = &progress {
        observers.push(p);
    }
    let record = match execute(&pipeline, &registry, state_dir, &plan, &exec, &observers) {
        Ok(r) => r,
        Err(e) => return core_error(&e),
    };
    for e in writer.errors() {
        errln!("warning: could not write the run record: {e}");
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&record).unwrap_or_default());
    } else if !quiet {
        print_run_summary(&record);
        print_previews(&pipeline, &record);
    }
    for s in record.stages.iter().filter(|s| s.status == StageStatus::Failed) {
        errln!("\nstage `{}` failed:\n{}", s.name, s.error.as_deref().unwrap_or("unknown error"));
    }
    if record.status == RunStatus::Failed {
        errln!(
            "\nFinished stages are cached. After fixing the problem, resume with:\n  {}",
            record.resume_command
        );
        Outcome::Failed
    } else {
        Outcome::Ok
    }
}

fn cache_word(status: StageStatus, cache: Option<CacheStatus>) -> &'static str {
    match (status, cache) {
        (StageStatus::Succeeded, Some(CacheStatus::Hit)) => "hit",
        (_, Some(CacheStatus::Miss)) => "miss",
        _ => "-",
    }
}

fn status_word(s: StageStatus) -> &'static str {
    match s {
        StageStatus::Pending => "pending",
        StageStatus::Running => "running",
        StageStatus::Succeeded => "ok",
        StageStatus::Failed => "FAILED",
        StageStatus::Skipped => "skipped",
    }
}

fn run_status_word(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Running => "running",
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
        RunStatus::Interrupted => "interrupted",
    }
}

fn stage_rows(record: &RunRecord, with_reason: bool) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let header = if with_reason {
        vec!["stage", "kind", "status", "cache", "reason", "rows in", "rows out", "time"]
    } else {
        vec!["stage", "kind", "status", "cache", "rows out", "time"]
    };
    let rows = record
        .stages
        .iter()
        .map(|s| {
            let mut r = vec![
                s.name.clone(),
                s.kind.clone(),
                status_word(s.status).to_string(),
                cache_word(s.status, s.cache).to_string(),
            ];
            if with_reason {
                r.push(s.reason.clone());
                r.push(s.rows_in.map_or("-".into(), thousands));
            }
            let mut out = s.rows_out.map_or("-".into(), thousands);
            for (k, label) in [("rows_skipped", "skipped"), ("rows_rejected", "rejected")] {
                if let Some(n) = s.metrics.get(k).and_then(serde_json::Value::as_u64) {
                    out = format!("{out} ({} {label})", thousands(n));
                }
            }
            r.push(out);
            r.push(s.duration_ms.map_or("-".into(), duration));
            r
        })
        .collect();
    (header, rows)
}

fn print_run_summary(record: &RunRecord) {
    let hits = record.stages.iter().filter(|s| s.cache == Some(CacheStatus::Hit)).count();
    outln!(
        "run {}  pipeline {}  {} in {}  ({} of {} stages cached)",
        record.run_id,
        record.pipeline,
        run_status_word(record.status),
        duration(record.duration_ms.unwrap_or(0.0)),
        hits,
        record.stages.len()
    );
    let (header, rows) = stage_rows(record, false);
    out!("{}", table(&header, &rows));
}

/// Prints the first rows of every stage marked `show`.
fn print_previews(pipeline: &Pipeline, record: &RunRecord) {
    for spec in pipeline.stages.iter().filter(|s| s.show.is_some()) {
        let Some(stage) = record.stage(&spec.name) else { continue };
        // The stage's output; for a stage with only named outputs (split), each of them.
        let shown: Vec<(String, &String)> = match stage.outputs.get(sluice_core::spec::DEFAULT_OUTPUT) {
            Some(path) => vec![(spec.name.clone(), path)],
            None => stage.outputs.iter().map(|(o, path)| (format!("{}.{o}", spec.name), path)).collect(),
        };
        let limit = spec.show.unwrap_or(20);
        for (name, path) in shown {
            match preview(Path::new(path), limit) {
                Ok((text, total)) => {
                    outln!("\n{name} (first {} of {} rows):", limit.min(total as usize), thousands(total));
                    outln!("{text}");
                }
                Err(e) => errln!("warning: cannot show `{name}`: {e}"),
            }
        }
    }
}

fn preview(path: &Path, limit: usize) -> Result<(String, u64), String> {
    let ds = sluice_core::dataset::Dataset::open(path).map_err(|e| e.to_string())?;
    let mut batches = Vec::new();
    let mut n = 0usize;
    for b in ds.batches().map_err(|e| e.to_string())? {
        let b = b.map_err(|e| e.to_string())?;
        let take = (limit - n).min(b.num_rows());
        batches.push(b.slice(0, take));
        n += take;
        if n >= limit {
            break;
        }
    }
    let text = arrow::util::pretty::pretty_format_batches(&batches).map_err(|e| e.to_string())?;
    Ok((text.to_string(), ds.rows))
}

fn plan_cmd(file: &Path, params: &[String], opts: &PlanOptions, state_dir: &Path, as_json: bool) -> Outcome {
    let registry = sluice_stages::registry();
    let Some(pipeline) = load_or_report(file, params, &registry, as_json) else {
        return Outcome::Invalid;
    };
    let plan: Plan = match plan(&pipeline, &registry, state_dir, opts) {
        Ok(p) => p,
        Err(e) => return core_error(&e),
    };
    if as_json {
        outln!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"pipeline": pipeline.name, "description": pipeline.description, "file": file.display().to_string(), "stages": plan.stages})
            )
            .unwrap_or_default()
        );
        return Outcome::Ok;
    }
    let runs = plan.stages.iter().filter(|s| s.action == Action::Run).count();
    outln!("plan for {} ({}): {runs} of {} stages to run", pipeline.name, file.display(), plan.stages.len());
    if let Some(d) = pipeline.description.as_deref().filter(|d| !d.is_empty()) {
        outln!("{d}");
    }
    let rows: Vec<Vec<String>> = plan
        .stages
        .iter()
        .map(|s| {
            let action = match s.action {
                Action::Run => "run",
                Action::Cached => "cached",
                Action::Skip => "skip",
            };
            vec![
                s.name.clone(),
                s.kind.clone(),
                action.to_string(),
                s.reason.clone(),
                s.cache_key[..12].to_string(),
            ]
        })
        .collect();
    out!("{}", table(&["stage", "kind", "action", "why", "cache key"], &rows));
    Outcome::Ok
}

fn graph(file: &Path, format: GraphFormatArg) -> Outcome {
    let registry = sluice_stages::registry();
    let Some(pipeline) = load_or_report(file, &[], &registry, false) else {
        return Outcome::Invalid;
    };
    let format = match format {
        GraphFormatArg::Mermaid => GraphFormat::Mermaid,
        GraphFormatArg::Dot => GraphFormat::Dot,
    };
    out!("{}", render(&pipeline, format));
    Outcome::Ok
}

fn kinds(as_json: bool) -> Outcome {
    let registry = sluice_stages::registry();
    if as_json {
        let kinds: Vec<_> = registry
            .kinds()
            .iter()
            .map(|k| json!({"name": k.name(), "doc": k.doc(), "version": k.version()}))
            .collect();
        let connectors: Vec<_> = registry
            .connectors()
            .iter()
            .map(|c| {
                json!({
                    "name": c.name(), "doc": c.doc(), "version": c.version(),
                    "keys": c.keys().iter().map(|k| json!({"name": k.name, "type": k.ty.describe(), "required": k.required, "default": k.default, "doc": k.doc})).collect::<Vec<_>>(),
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"kinds": kinds, "connectors": connectors}))
                .unwrap_or_default()
        );
        return Outcome::Ok;
    }
    outln!("stage kinds:");
    let rows: Vec<Vec<String>> =
        registry.kinds().iter().map(|k| vec![k.name().to_string(), k.doc().to_string()]).collect();
    out!("{}", table(&["kind", "what it does"], &rows));
    outln!("\nconnectors (collect):");
    let rows: Vec<Vec<String>> =
        registry.connectors().iter().map(|c| vec![c.name().to_string(), c.doc().to_string()]).collect();
    out!("{}", table(&["connector", "what it reads"], &rows));
    Outcome::Ok
}

fn runs(state_dir: &Path, pipeline: Option<&str>, limit: usize, as_json: bool) -> Outcome {
    let store = RunStore::new(state_dir);
    let ids = match store.ids() {
        Ok(ids) => ids,
        Err(e) => return core_error(&e),
    };
    let mut records = Vec::new();
    for id in ids {
        match store.load(&id) {
            Ok(r) if pipeline.is_none_or(|p| p == r.pipeline) => records.push(r),
            Ok(_) => {}
            Err(e) => errln!("warning: {e}"),
        }
        if records.len() >= limit {
            break;
        }
    }
    if as_json {
        let list: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["status"] = json!(run_status_word(r.effective_status()));
                v
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&list).unwrap_or_default());
        return Outcome::Ok;
    }
    if records.is_empty() {
        outln!("no runs in {}", state_dir.display());
        return Outcome::Ok;
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let ran = r.stages.iter().filter(|s| s.cache == Some(CacheStatus::Miss)).count();
            let hit = r.stages.iter().filter(|s| s.cache == Some(CacheStatus::Hit)).count();
            vec![
                r.run_id.clone(),
                r.pipeline.clone(),
                run_status_word(r.effective_status()).to_string(),
                r.started_at.get(..19).unwrap_or(&r.started_at).replace('T', " "),
                r.duration_ms.map_or("-".into(), duration),
                format!("{ran} run, {hit} cached"),
            ]
        })
        .collect();
    out!("{}", table(&["run", "pipeline", "status", "started (UTC)", "time", "stages"], &rows));
    Outcome::Ok
}

fn show(state_dir: &Path, query: &str, as_json: bool) -> Outcome {
    let record = match RunStore::new(state_dir).resolve(query) {
        Ok(r) => r,
        Err(e) => return core_error(&e),
    };
    if as_json {
        let mut v = serde_json::to_value(&record).unwrap_or_default();
        v["status"] = json!(run_status_word(record.effective_status()));
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Outcome::Ok;
    }
    outln!(
        "run {}  pipeline {} ({})  {}  started {}  took {}",
        record.run_id,
        record.pipeline,
        record.pipeline_file,
        run_status_word(record.effective_status()),
        record.started_at,
        record.duration_ms.map_or("-".into(), duration)
    );
    if record.params.as_object().is_some_and(|m| !m.is_empty()) {
        outln!("params: {}", record.params);
    }
    let (header, rows) = stage_rows(&record, true);
    out!("{}", table(&header, &rows));
    for s in record.stages.iter().filter(|s| s.error.is_some()) {
        outln!("\nstage `{}` failed:\n{}", s.name, s.error.as_deref().unwrap_or_default());
    }
    if record.effective_status() != RunStatus::Succeeded {
        outln!("\nresume with: {}", record.resume_command);
    }
    Outcome::Ok
}

fn gc_cmd(state_dir: &Path, keep_runs: usize, dry_run: bool, as_json: bool) -> Outcome {
    let lock = match StateLock::try_exclusive(state_dir) {
        Ok(Some(l)) => l,
        Ok(None) => {
            errln!("a pipeline is running against {}; waiting for it to finish...", state_dir.display());
            match StateLock::exclusive(state_dir) {
                Ok(l) => l,
                Err(e) => return core_error(&e),
            }
        }
        Err(e) => return core_error(&e),
    };
    let report = match gc(state_dir, &GcOptions { keep_runs, dry_run }, &lock) {
        Ok(r) => r,
        Err(e) => return core_error(&e),
    };
    if as_json {
        outln!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
        return Outcome::Ok;
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    outln!(
        "{verb} {} artifact{}, {} run record{}, {} temp dir{}; {} {:.1} MB (kept {} artifacts)",
        report.artifacts_removed.len(),
        if report.artifacts_removed.len() == 1 { "" } else { "s" },
        report.runs_removed.len(),
        if report.runs_removed.len() == 1 { "" } else { "s" },
        report.temp_removed,
        if report.temp_removed == 1 { "" } else { "s" },
        if dry_run { "would free" } else { "freed" },
        report.bytes_freed as f64 / 1e6,
        report.artifacts_kept
    );
    Outcome::Ok
}
