//! Executes a plan: independent stages in parallel (bounded by `jobs`), outputs handed on in
//! memory while written to Parquet, a failed stage stopping only its downstream.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use indexmap::IndexMap;

use crate::artifact::{ArtifactStore, Manifest, PendingFile};
use crate::dataset::Dataset;
use crate::error::{CoreError, StageError};
use crate::graph::downstream_closure;
use crate::observer::{RunEvent, RunObserver};
use crate::plan::{Action, Plan};
use crate::record::{CacheStatus, RunRecord, RunStatus, StageRecord, StageStatus};
use crate::registry::Registry;
use crate::spec::Pipeline;
use crate::stage::{Input, StageContext};
use crate::state::{PipelineState, StateLock};

/// How to execute.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Stages running at once.
    pub jobs: usize,
    /// The command that re-runs this pipeline (recorded, printed after a failure).
    pub resume_command: String,
    /// Bytes of each output kept in memory for downstream stages (beyond: re-read Parquet);
    /// default [`default_memory_budget`].
    pub memory_budget: usize,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            resume_command: String::new(),
            memory_budget: default_memory_budget(),
        }
    }
}

/// The default hand-off budget: an eighth of physical memory, between 512 MiB and 4 GiB.
/// A stage that rewrites its input holds it whole anyway, so keeping an output in memory
/// costs little extra at peak, while re-reading it from Parquet costs a full decode.
pub fn default_memory_budget() -> usize {
    const MIB: usize = 1 << 20;
    physical_memory().map_or(512 * MIB, |total| (total / 8).clamp(512 * MIB, 4096 * MIB))
}

/// Physical memory in bytes, from `/proc/meminfo` (Linux); `None` elsewhere.
fn physical_memory() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Current time as RFC 3339 with microseconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A new run id: sortable by start time, unique across processes.
pub fn new_run_id() -> String {
    let now = chrono::Utc::now();
    let salt = blake3::hash(format!("{}-{:?}", std::process::id(), now.timestamp_nanos_opt()).as_bytes());
    format!("{}-{}", now.format("%Y%m%d-%H%M%S%.3f"), &salt.to_hex()[..4])
}

/// Outputs of a finished stage: opened already, or still only a cache key.
enum Produced {
    Open(IndexMap<String, Dataset>),
    Stored(String),
}

struct Done {
    manifest: Manifest,
    outputs: IndexMap<String, Dataset>,
    /// Set when output files are still being encoded: the artifact is committed later.
    deferred: Option<Deferred>,
}

/// A stage whose outputs are computed (and handed on in memory) while their Parquet files
/// are still being encoded: what is needed to commit its artifact once they are complete.
struct Deferred {
    tmp: PathBuf,
    files: Vec<PendingFile>,
}

impl Deferred {
    /// Waits for every file, records the sizes and commits; a failed file fails the stage and
    /// its temp dir is removed, as for any failed stage.
    fn commit(self, store: &ArtifactStore, mut manifest: Manifest) -> Result<Manifest, StageError> {
        let mut failed = None;
        // Every file is waited for, even after a failure, so no writer outlives the run.
        for file in self.files {
            let name = file.name().to_string();
            match file.wait() {
                Ok(bytes) => {
                    if let Some(o) = manifest.outputs.get_mut(&name) {
                        o.bytes = bytes;
                    }
                }
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        if let Some(e) = failed {
            let _ = std::fs::remove_dir_all(&self.tmp);
            return Err(e);
        }
        store.commit(&self.tmp, &manifest)?;
        Ok(manifest)
    }
}

/// What a stage's thread reports to the executor.
enum Report {
    /// The stage ran; `Done::deferred` says whether its artifact is committed yet.
    Computed { i: usize, result: Result<Done, StageError>, started: Instant },
    /// A deferred artifact was committed (or failed to be).
    Committed { i: usize, result: Result<Manifest, StageError>, started: Instant },
}

fn emit(observers: &[&dyn RunObserver], event: RunEvent<'_>) {
    for o in observers {
        o.on_event(&event);
    }
}

/// Runs the plan and returns the final run record (also written to the state dir by the
/// [`crate::observer::RecordWriter`] when it is among `observers`).
pub fn execute(
    p: &Pipeline,
    registry: &Registry,
    state_dir: &Path,
    plan: &Plan,
    opts: &ExecOptions,
    observers: &[&dyn RunObserver],
) -> Result<RunRecord, CoreError> {
    let _lock = StateLock::shared(state_dir)?;
    let t0 = Instant::now();
    let store = ArtifactStore::new(state_dir);
    let run_id = new_run_id();
    let n = p.stages.len();
    // Plan position of each stage index.
    let mut pos = vec![usize::MAX; n];
    for (k, ps) in plan.stages.iter().enumerate() {
        pos[ps.index] = k;
    }
    let mut record = RunRecord {
        run_id: run_id.clone(),
        pipeline: p.name.clone(),
        pipeline_file: p.file.path.display().to_string(),
        pipeline_hash: p.hash.clone(),
        params: p.params_json(),
        status: RunStatus::Running,
        started_at: now_rfc3339(),
        finished_at: None,
        duration_ms: None,
        pid: std::process::id(),
        sluice_version: env!("CARGO_PKG_VERSION").to_string(),
        resume_command: opts.resume_command.clone(),
        stages: plan
            .stages
            .iter()
            .map(|ps| StageRecord {
                name: ps.name.clone(),
                kind: ps.kind.clone(),
                status: if ps.action == Action::Skip { StageStatus::Skipped } else { StageStatus::Pending },
                cache: None,
                reason: ps.reason.clone(),
                cache_key: ps.cache_key.clone(),
                started_at: None,
                finished_at: None,
                duration_ms: None,
                rows_in: None,
                rows_out: None,
                bytes_out: None,
                outputs: IndexMap::new(),
                metrics: Default::default(),
                error: None,
            })
            .collect(),
    };
    emit(observers, RunEvent::RunStarted { run: &record });
    let mut state = PipelineState::load(state_dir, &p.name);
    let mut produced: Vec<Option<Produced>> = (0..n).map(|_| None).collect();
    let mut actions: Vec<Action> = vec![Action::Skip; n];
    for ps in &plan.stages {
        actions[ps.index] = ps.action;
    }

    // Cache hits and unselected stages with artifacts: known from manifests alone.
    for ps in &plan.stages {
        match ps.action {
            Action::Cached => match store.manifest(&ps.cache_key) {
                Ok(m) => {
                    let k = pos[ps.index];
                    let dir = store.dir(&ps.cache_key);
                    let rec = &mut record.stages[k];
                    rec.status = StageStatus::Succeeded;
                    rec.cache = Some(CacheStatus::Hit);
                    rec.rows_in = Some(m.rows_in);
                    rec.rows_out = Some(rows_out(&m));
                    rec.bytes_out = Some(m.outputs.values().map(|o| o.bytes).sum());
                    rec.outputs = m
                        .outputs
                        .iter()
                        .map(|(k, o)| (k.clone(), dir.join(&o.file).display().to_string()))
                        .collect();
                    rec.metrics = m.metrics.clone();
                    produced[ps.index] = Some(Produced::Stored(ps.cache_key.clone()));
                    state.stages.insert(ps.name.clone(), ps.state(&p.stages[ps.index].config_hash));
                    emit(observers, RunEvent::StageFinished { stage: &record.stages[k], run: &record });
                }
                Err(e) => {
                    actions[ps.index] = Action::Run;
                    record.stages[pos[ps.index]].reason = format!("artifact unreadable ({e})");
                }
            },
            Action::Skip if store.exists(&ps.cache_key) => {
                produced[ps.index] = Some(Produced::Stored(ps.cache_key.clone()));
            }
            _ => {}
        }
    }

    // How many running consumers still need each stage's in-memory outputs, and how many
    // of them have yet to start.
    let mut consumers = vec![0usize; n];
    for (i, action) in actions.iter().enumerate() {
        if *action == Action::Run {
            for j in p.upstream(i) {
                consumers[j] += 1;
            }
        }
    }
    let mut unstarted = consumers.clone();

    let jobs = opts.jobs.max(1);
    let (tx, rx) = mpsc::channel::<Report>();
    std::thread::scope(|scope| {
        let mut running = 0usize;
        // Stages computed whose artifacts are still being committed.
        let mut committing = 0usize;
        let mut workers = Workers::new(scope);
        loop {
            // Launch every ready stage, in plan order, up to `jobs`.
            for ps in &plan.stages {
                // A stage still writing its files counts: `--jobs 1` means one stage at a time.
                if running + committing >= jobs {
                    break;
                }
                let i = ps.index;
                let k = pos[i];
                if actions[i] != Action::Run || record.stages[k].status != StageStatus::Pending {
                    continue;
                }
                let ups = p.upstream(i);
                if !ups.iter().all(|&j| produced[j].is_some()) {
                    continue;
                }
                let mut inputs = match gather_inputs(p, i, &mut produced, &store) {
                    Ok(inputs) => inputs,
                    Err(e) => {
                        fail_stage(&mut record, k, &now_rfc3339(), 0.0, e.render(), &p.redactor);
                        emit(observers, RunEvent::StageFinished { stage: &record.stages[k], run: &record });
                        skip_downstream(p, i, &pos, &mut record, observers);
                        continue;
                    }
                };
                // The last consumer to start gets the only in-memory copy, so it can free the
                // rows as it goes instead of the run holding them until it finishes.
                for &j in &ups {
                    unstarted[j] = unstarted[j].saturating_sub(1);
                    if unstarted[j] == 0
                        && let Some(Produced::Open(outs)) = &mut produced[j]
                    {
                        outs.values_mut().for_each(Dataset::release_memory);
                    }
                }
                let started = now_rfc3339();
                record.stages[k].status = StageStatus::Running;
                record.stages[k].started_at = Some(started);
                record.stages[k].rows_in = Some(inputs.iter().map(|x| x.dataset.rows).sum());
                emit(observers, RunEvent::StageStarted { stage: &record.stages[k], run: &record });
                tracing::info!(stage = %ps.name, reason = %ps.reason, "stage started");
                running += 1;
                let tx = tx.clone();
                let spec = &p.stages[i];
                let key = ps.cache_key.clone();
                let run_id = run_id.as_str();
                let store = &store;
                let redactor = &p.redactor;
                let seed = p.seed;
                let budget = opts.memory_budget;
                // A forced stage starts over: it does not see its previous artifact.
                let previous_key =
                    if ps.forced { None } else { state.stages.get(&ps.name).map(|s| s.cache_key.clone()) };
                workers.submit(running - 1, move || {
                    let t = Instant::now();
                    let result = catch_unwind(AssertUnwindSafe(|| {
                        run_stage(
                            spec,
                            registry,
                            &mut inputs,
                            store,
                            &key,
                            run_id,
                            seed,
                            redactor,
                            budget,
                            observers,
                            previous_key,
                        )
                    }))
                    .unwrap_or_else(|panic| {
                        let msg = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "unknown panic".to_string());
                        Err(StageError::Internal(format!("stage panicked: {msg}")))
                    });
                    let _ = tx.send(Report::Computed { i, result, started: t });
                });
            }
            if running == 0 && committing == 0 {
                break;
            }
            let Ok(report) = rx.recv() else { break };
            // Which stage is done — committed, or failed — or hand a computed one to a committer.
            let (i, committed, started) = match report {
                Report::Computed { i, result, started } => {
                    running -= 1;
                    // Release in-memory copies nobody still needs.
                    for j in p.upstream(i) {
                        consumers[j] = consumers[j].saturating_sub(1);
                        if consumers[j] == 0
                            && let Some(Produced::Open(outs)) = &mut produced[j]
                        {
                            outs.values_mut().for_each(Dataset::release_memory);
                        }
                    }
                    match result {
                        Ok(Done { manifest, outputs, deferred: None }) => {
                            produced[i] = Some(Produced::Open(outputs));
                            (i, Ok(manifest), started)
                        }
                        Ok(Done { manifest, outputs, deferred: Some(deferred) }) => {
                            // Downstream stages start on the rows in memory now; the stage
                            // finishes once its files are complete and committed.
                            produced[i] = Some(Produced::Open(outputs));
                            committing += 1;
                            let tx = tx.clone();
                            let store = &store;
                            scope.spawn(move || {
                                let result = deferred.commit(store, manifest);
                                let _ = tx.send(Report::Committed { i, result, started });
                            });
                            continue;
                        }
                        Err(e) => (i, Err(e), started),
                    }
                }
                Report::Committed { i, result, started } => {
                    committing -= 1;
                    (i, result, started)
                }
            };
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            let finished = now_rfc3339();
            let k = pos[i];
            match committed {
                Ok(manifest) => {
                    let rec = &mut record.stages[k];
                    rec.status = StageStatus::Succeeded;
                    rec.cache = Some(CacheStatus::Miss);
                    rec.finished_at = Some(finished);
                    rec.duration_ms = Some(round3(ms));
                    rec.rows_out = Some(rows_out(&manifest));
                    rec.bytes_out = Some(manifest.outputs.values().map(|o| o.bytes).sum());
                    if let Some(Produced::Open(outs)) = &produced[i] {
                        rec.outputs =
                            outs.iter().map(|(k, d)| (k.clone(), d.path.display().to_string())).collect();
                    }
                    rec.metrics = manifest.metrics;
                    let ps = &plan.stages[k];
                    state.stages.insert(ps.name.clone(), ps.state(&p.stages[i].config_hash));
                    tracing::info!(stage = %ps.name, ms = round3(ms), "stage finished");
                    emit(observers, RunEvent::StageFinished { stage: &record.stages[k], run: &record });
                }
                Err(e) => {
                    let text = match e.config_key() {
                        // A connector's config error points at its key in the file.
                        Some(_) => crate::diagnostic::Diagnostic::error("config", e.to_string())
                            .at(&p.file, p.stages[i].span_of_error(&e))
                            .render()
                            .trim_end()
                            .to_string(),
                        None => e.render(),
                    };
                    // The CLI prints the failure; the log line is for -v and JSON log consumers.
                    tracing::info!(stage = %p.stages[i].name, error = %p.redactor.redact(&text), "stage failed");
                    fail_stage(&mut record, k, &finished, ms, text, &p.redactor);
                    emit(observers, RunEvent::StageFinished { stage: &record.stages[k], run: &record });
                    skip_downstream(p, i, &pos, &mut record, observers);
                }
            }
        }
    });

    // Anything still pending could not start (its upstream failed or was unavailable).
    for k in 0..record.stages.len() {
        if record.stages[k].status == StageStatus::Pending {
            record.stages[k].status = StageStatus::Skipped;
            record.stages[k].reason = "upstream did not complete".to_string();
            emit(observers, RunEvent::StageFinished { stage: &record.stages[k], run: &record });
        }
    }
    record.status = if record.stages.iter().any(|s| s.status == StageStatus::Failed) {
        RunStatus::Failed
    } else {
        RunStatus::Succeeded
    };
    record.finished_at = Some(now_rfc3339());
    record.duration_ms = Some(round3(t0.elapsed().as_secs_f64() * 1000.0));
    state.save(state_dir, &p.name)?;
    emit(observers, RunEvent::RunFinished { run: &record });
    Ok(record)
}

/// Threads that run stages, started as concurrency first needs them and reused after:
/// a thread per stage cost a clone, a stack mapping and its teardown every time, a
/// noticeable share of a trivial stage's millisecond.
struct Workers<'scope, 'env> {
    scope: &'scope std::thread::Scope<'scope, 'env>,
    tx: Option<mpsc::Sender<Job<'scope>>>,
    rx: std::sync::Arc<std::sync::Mutex<mpsc::Receiver<Job<'scope>>>>,
    started: usize,
}

type Job<'scope> = Box<dyn FnOnce() + Send + 'scope>;

impl<'scope, 'env> Workers<'scope, 'env> {
    fn new(scope: &'scope std::thread::Scope<'scope, 'env>) -> Self {
        let (tx, rx) = mpsc::channel();
        Workers { scope, tx: Some(tx), rx: std::sync::Arc::new(std::sync::Mutex::new(rx)), started: 0 }
    }

    /// Queues `job`; `busy` jobs are already running, so a thread is started when every
    /// existing one is taken.
    fn submit(&mut self, busy: usize, job: impl FnOnce() + Send + 'scope) {
        if busy >= self.started {
            let rx = std::sync::Arc::clone(&self.rx);
            self.scope.spawn(move || {
                loop {
                    // The lock is held only while waiting for the next job, not while running it.
                    let next = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    match next {
                        Ok(job) => job(),
                        Err(_) => return, // the run is over
                    }
                }
            });
            self.started += 1;
        }
        if let Some(tx) = &self.tx {
            // Workers only stop once `tx` is dropped, so the send cannot fail.
            let _ = tx.send(Box::new(job));
        }
    }
}

impl Drop for Workers<'_, '_> {
    fn drop(&mut self) {
        // Closing the queue ends every worker; the scope then joins them.
        self.tx = None;
    }
}

fn round3(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

fn rows_out(m: &Manifest) -> u64 {
    m.outputs.iter().filter(|(k, _)| k.as_str() != "rejects").map(|(_, o)| o.rows).sum()
}

fn fail_stage(
    record: &mut RunRecord,
    k: usize,
    finished: &str,
    ms: f64,
    error: String,
    redactor: &crate::redact::Redactor,
) {
    let rec = &mut record.stages[k];
    rec.status = StageStatus::Failed;
    rec.cache = Some(CacheStatus::Miss);
    rec.finished_at = Some(finished.to_string());
    rec.duration_ms = Some(round3(ms));
    rec.error = Some(redactor.redact(&error));
}

fn skip_downstream(
    p: &Pipeline,
    i: usize,
    pos: &[usize],
    record: &mut RunRecord,
    observers: &[&dyn RunObserver],
) {
    let failed = p.stages[i].name.clone();
    for j in downstream_closure(p, &[i]) {
        let k = pos[j];
        if j != i && record.stages[k].status == StageStatus::Pending {
            record.stages[k].status = StageStatus::Skipped;
            record.stages[k].reason = format!("upstream `{failed}` failed");
            emit(observers, RunEvent::StageFinished { stage: &record.stages[k], run: record });
        }
    }
}

fn gather_inputs(
    p: &Pipeline,
    i: usize,
    produced: &mut [Option<Produced>],
    store: &ArtifactStore,
) -> Result<Vec<Input>, StageError> {
    let mut inputs = Vec::new();
    for inp in &p.stages[i].inputs {
        let j =
            p.index(&inp.stage).ok_or_else(|| StageError::Internal(format!("no stage `{}`", inp.stage)))?;
        if let Some(Produced::Stored(key)) = &produced[j] {
            let (_, outs) = store.open_outputs(key).map_err(|e| {
                StageError::Failed(format!("reading the cached output of `{}`: {e}", inp.stage))
            })?;
            produced[j] = Some(Produced::Open(outs));
        }
        let Some(Produced::Open(outs)) = &produced[j] else {
            return Err(StageError::Internal(format!("input `{}` is not available", inp.text)));
        };
        let ds = outs.get(&inp.output).ok_or_else(|| {
            StageError::Internal(format!("stage `{}` produced no output `{}`", inp.stage, inp.output))
        })?;
        inputs.push(Input { reference: inp.text.clone(), table_name: inp.table_name(), dataset: ds.clone() });
    }
    Ok(inputs)
}

#[allow(clippy::too_many_arguments)]
fn run_stage(
    spec: &crate::spec::StageSpec,
    registry: &Registry,
    inputs: &mut [Input],
    store: &ArtifactStore,
    key: &str,
    run_id: &str,
    seed: u64,
    redactor: &crate::redact::Redactor,
    memory_budget: usize,
    observers: &[&dyn RunObserver],
    previous_key: Option<String>,
) -> Result<Done, StageError> {
    let kind = registry
        .kind(&spec.kind)
        .ok_or_else(|| StageError::Internal(format!("unknown kind `{}`", spec.kind)))?;
    if !inputs.is_empty() && !kind.checks_inputs_itself(spec) {
        // The schema contract against the data as it really is, before any work is done.
        let schemas: Vec<_> = inputs.iter().map(|x| Some(x.dataset.schema.clone())).collect();
        crate::schema::check_inputs(spec, registry, &schemas)?;
    }
    let stage = kind.build(spec, registry)?;
    let tmp = store.begin(key, run_id, &spec.name)?;
    let mut ctx = StageContext {
        spec,
        run_id,
        seed,
        redactor,
        tmp_dir: tmp.clone(),
        final_dir: store.dir(key),
        memory_budget,
        outputs: IndexMap::new(),
        metrics: Default::default(),
        observers,
        previous_key,
        store: Some(store.clone()),
        pending: Vec::new(),
    };
    let result = stage.run(&mut ctx, inputs).and_then(|()| {
        let missing: Vec<&String> = spec.outputs.iter().filter(|o| !ctx.outputs.contains_key(*o)).collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(StageError::Internal(format!("stage `{}` did not write output(s) {missing:?}", spec.name)))
        }
    });
    if let Err(e) = result {
        // Let writers still encoding finish before their directory goes.
        for file in std::mem::take(&mut ctx.pending) {
            let _ = file.wait();
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let manifest = Manifest {
        stage: spec.name.clone(),
        kind: spec.kind.clone(),
        cache_key: key.to_string(),
        run_id: run_id.to_string(),
        created_at: now_rfc3339(),
        rows_in: inputs.iter().map(|x| x.dataset.rows).sum(),
        outputs: ctx.outputs.iter().map(|(k, (info, _))| (k.clone(), info.clone())).collect(),
        metrics: std::mem::take(&mut ctx.metrics),
    };
    let outputs = std::mem::take(&mut ctx.outputs).into_iter().map(|(k, (_, d))| (k, d)).collect();
    let files = std::mem::take(&mut ctx.pending);
    if files.is_empty() {
        store.commit(&tmp, &manifest)?;
        return Ok(Done { manifest, outputs, deferred: None });
    }
    Ok(Done { manifest, outputs, deferred: Some(Deferred { tmp, files }) })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use proptest::prelude::*;
    use serde_json::{Map, Value};
    use sluice_plugin::{KeySpec, Sources};

    use super::*;
    use crate::compile::{CompileOptions, compile};
    use crate::diagnostic::SourceFile;
    use crate::registry::{Arity, Issue, StageKind};
    use crate::spec::StageSpec;
    use crate::stage::Stage;

    /// Emits 1 + the sum of its inputs' first column, so results show data flow; padded
    /// with zero rows up to `rows` (a large output is encoded in the background).
    struct Sum {
        name: &'static str,
        rows: usize,
        /// Removes its temp dir after writing, so committing the artifact fails.
        sabotage: bool,
    }
    struct SumStage {
        rows: usize,
        sabotage: bool,
    }

    const SUM: Sum = Sum { name: "sum", rows: 1, sabotage: false };

    impl StageKind for Sum {
        fn name(&self) -> &'static str {
            self.name
        }
        fn doc(&self) -> &'static str {
            "test"
        }
        fn version(&self) -> &'static str {
            "1"
        }
        fn arity(&self) -> Arity {
            Arity { min: 0, max: None }
        }
        fn keys(&self, _: &Map<String, Value>, _: &Registry) -> Option<Vec<KeySpec>> {
            Some(Vec::new())
        }
        fn check(&self, _: &StageSpec, _: &Registry) -> Vec<Issue> {
            Vec::new()
        }
        fn outputs(&self, _: &Map<String, Value>) -> Vec<String> {
            vec!["data".into()]
        }
        fn is_result(&self) -> bool {
            true
        }
        fn sources(&self, _: &StageSpec, _: &Registry) -> Result<Option<Sources>, StageError> {
            Ok(None)
        }
        fn build(&self, _: &StageSpec, _: &Registry) -> Result<Box<dyn Stage>, StageError> {
            Ok(Box::new(SumStage { rows: self.rows, sabotage: self.sabotage }))
        }
    }

    impl Stage for SumStage {
        fn run(&self, ctx: &mut StageContext<'_>, inputs: &mut [Input]) -> Result<(), StageError> {
            let mut total = 1i64;
            for i in inputs {
                for b in i.dataset.read_all()? {
                    if let Some(a) = b.column(0).as_any().downcast_ref::<Int64Array>() {
                        total += a.iter().flatten().sum::<i64>();
                    }
                }
            }
            let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
            let mut w = ctx.output("data", schema.clone())?;
            let mut first = Some(total);
            for start in (0..self.rows).step_by(10_000) {
                let n = 10_000.min(self.rows - start);
                let values = first.take().into_iter().chain(std::iter::repeat(0)).take(n);
                let batch = RecordBatch::try_new(
                    schema.clone(),
                    vec![Arc::new(Int64Array::from_iter_values(values))],
                )
                .map_err(|e| StageError::arrow("test", e))?;
                w.write(batch)?;
            }
            ctx.finish(w)?;
            if self.sabotage {
                std::fs::remove_dir_all(ctx.artifact_dir())
                    .map_err(|e| StageError::io(ctx.artifact_dir(), e))?;
            }
            Ok(())
        }
    }

    #[derive(Default)]
    struct Log(Mutex<Vec<(String, bool)>>);

    impl RunObserver for Log {
        fn on_event(&self, e: &RunEvent<'_>) {
            let mut log = self.0.lock().unwrap();
            match e {
                RunEvent::StageStarted { stage, .. } => log.push((stage.name.clone(), true)),
                RunEvent::StageFinished { stage, .. } => log.push((stage.name.clone(), false)),
                _ => {}
            }
        }
    }

    fn pipeline_text(n: usize, upstream: &[Vec<usize>]) -> String {
        let mut t = String::from("[pipeline]\nname = \"prop\"\n\n");
        for (i, ups) in upstream.iter().enumerate().take(n) {
            let inputs: Vec<String> = ups.iter().map(|j| format!("\"s{j}\"")).collect();
            t.push_str(&format!("[stages.s{i}]\nkind = \"sum\"\ninputs = [{}]\n\n", inputs.join(", ")));
        }
        t
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// For random DAGs, the executor starts every stage exactly once, only after all its
        /// upstream stages finished, and a second run is all cache hits.
        #[test]
        fn executor_respects_edges_and_runs_each_stage_once(
            n in 1usize..14,
            edges in proptest::collection::vec((0usize..14, 0usize..14), 0..30),
            jobs in 1usize..4,
        ) {
            let mut upstream = vec![Vec::new(); n];
            for (a, b) in edges {
                let (a, b) = (a % n, b % n);
                if a < b && !upstream[b].contains(&a) { upstream[b].push(a); }
            }
            let mut registry = Registry::new();
            registry.add_kind(Arc::new(SUM));
            let dir = tempfile::tempdir().unwrap();
            let file = SourceFile::new(dir.path().join("p.toml"), pipeline_text(n, &upstream));
            let p = compile(&file, &registry, &CompileOptions { overrides: &[], env: &|_| None }).unwrap();
            let plan = crate::plan::plan(&p, &registry, dir.path(), &Default::default()).unwrap();
            let log = Log::default();
            let opts = ExecOptions { jobs, ..ExecOptions::default() };
            let rec = execute(&p, &registry, dir.path(), &plan, &opts, &[&log]).unwrap();
            prop_assert_eq!(rec.status, RunStatus::Succeeded, "{:#?}", rec.stages.iter().map(|s| (&s.name, &s.error)).collect::<Vec<_>>());
            let events = log.0.lock().unwrap().clone();
            for (i, ups) in upstream.iter().enumerate() {
                let name = format!("s{i}");
                let starts: Vec<usize> = events.iter().enumerate().filter(|(_, e)| e.0 == name && e.1).map(|(k, _)| k).collect();
                prop_assert_eq!(starts.len(), 1, "{} started {} times", name, starts.len());
                for &j in ups {
                    let up = format!("s{j}");
                    let done = events.iter().position(|e| e.0 == up && !e.1).unwrap();
                    prop_assert!(done < starts[0], "{} started before its input {} finished", name, up);
                }
            }
            let plan2 = crate::plan::plan(&p, &registry, dir.path(), &Default::default()).unwrap();
            prop_assert!(plan2.stages.iter().all(|s| s.action == Action::Cached));
        }
    }

    /// A run of `text` in a fresh state dir, with `sum` and `extra` registered.
    struct Ran {
        dir: tempfile::TempDir,
        registry: Registry,
        pipeline: Pipeline,
        record: RunRecord,
    }

    fn run_text(extra: Sum, text: &str, observers: &[&dyn RunObserver]) -> Ran {
        let mut registry = Registry::new();
        registry.add_kind(Arc::new(SUM));
        registry.add_kind(Arc::new(extra));
        let dir = tempfile::tempdir().unwrap();
        let file = SourceFile::new(dir.path().join("p.toml"), text.to_string());
        let p = compile(&file, &registry, &CompileOptions { overrides: &[], env: &|_| None }).unwrap();
        let plan = crate::plan::plan(&p, &registry, dir.path(), &Default::default()).unwrap();
        let record = execute(&p, &registry, dir.path(), &plan, &ExecOptions::default(), observers).unwrap();
        Ran { dir, registry, pipeline: p, record }
    }

    impl Ran {
        fn replan(&self) -> Plan {
            crate::plan::plan(&self.pipeline, &self.registry, self.dir.path(), &Default::default()).unwrap()
        }
    }

    /// A large output is handed on while its file is still encoding; the stage succeeds
    /// only once the artifact is committed, with its real size, and a re-run is cached.
    #[test]
    fn large_outputs_are_committed_after_downstream_starts_on_them() {
        let text = "[pipeline]\nname = \"big\"\n\n[stages.a]\nkind = \"big\"\n\n\
                    [stages.b]\nkind = \"sum\"\ninputs = [\"a\"]\n\n[stages.c]\nkind = \"big\"\ninputs = [\"a\", \"b\"]\n";
        let log = Log::default();
        let ran = run_text(Sum { name: "big", rows: 300_000, sabotage: false }, text, &[&log]);
        let rec = &ran.record;
        assert_eq!(rec.status, RunStatus::Succeeded);
        for stage in &rec.stages {
            assert_eq!(stage.status, StageStatus::Succeeded, "{}", stage.name);
            let path = &stage.outputs["data"];
            assert_eq!(stage.bytes_out, Some(std::fs::metadata(path).unwrap().len()), "{}", stage.name);
        }
        let store = ArtifactStore::new(ran.dir.path());
        let first = |stage: usize| {
            let (_, outs) = store.open_outputs(&rec.stages[stage].cache_key).unwrap();
            let batches = outs["data"].read_all().unwrap();
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            let v = batches[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
            (rows, v)
        };
        // a = 1; b = 1 + 1; c = 1 + (1 + 2), each from the rows handed on in memory.
        assert_eq!([first(0), first(1), first(2)], [(300_000, 1), (1, 2), (300_000, 4)]);
        let finished = log.0.lock().unwrap().iter().filter(|e| !e.1).count();
        assert_eq!(finished, 3, "every stage reports finishing once");
        assert!(ran.replan().stages.iter().all(|s| s.action == Action::Cached));
    }

    /// When a deferred artifact cannot be committed, the stage fails with the reason, the
    /// run fails, and the next plan runs the stage again; nothing half-written is kept.
    #[test]
    fn a_deferred_artifact_that_cannot_be_committed_fails_its_stage() {
        let text = "[pipeline]\nname = \"broken\"\n\n[stages.a]\nkind = \"broken\"\n\n\
                    [stages.b]\nkind = \"sum\"\ninputs = [\"a\"]\n";
        let ran = run_text(Sum { name: "broken", rows: 300_000, sabotage: true }, text, &[]);
        let rec = &ran.record;
        assert_eq!(rec.status, RunStatus::Failed);
        let a = &rec.stages[0];
        assert_eq!(a.status, StageStatus::Failed);
        assert!(a.error.as_deref().is_some_and(|e| e.contains("data.parquet")), "{:?}", a.error);
        assert!(!ArtifactStore::new(ran.dir.path()).exists(&a.cache_key));
        assert_eq!(ran.replan().stages[0].action, Action::Run);
    }
}
