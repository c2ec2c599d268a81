//! Planning: cache keys for every stage and, for each, whether it runs and why.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;
use sluice_plugin::Sources;

use crate::artifact::ArtifactStore;
use crate::error::CoreError;
use crate::graph::upstream_closure;
use crate::registry::Registry;
use crate::spec::Pipeline;
use crate::state::{FingerprintMemo, PipelineState, StageState};

/// What the executor will do with a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Execute it.
    Run,
    /// Reuse its artifact.
    Cached,
    /// Leave it alone (not selected by `--stage`).
    Skip,
}

/// One stage of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStage {
    /// Index into `Pipeline::stages`.
    #[serde(skip)]
    pub index: usize,
    /// Stage name.
    pub name: String,
    /// Stage kind.
    pub kind: String,
    /// Cache key of its outputs.
    pub cache_key: String,
    /// Run, cached or skip.
    pub action: Action,
    /// Why, in words: `new`, `config changed`, `input `x` changed`, `source changed`,
    /// `artifact missing`, `forced`, `unchanged`, `not selected`, `source is volatile`.
    pub reason: String,
    /// Source fingerprint, if the stage reads outside data.
    #[serde(skip)]
    pub source: Option<String>,
    /// Input references with their cache keys.
    #[serde(skip)]
    pub input_keys: Vec<(String, String)>,
    /// Named by `--force` or `--force-all`: the stage starts over, without its previous
    /// artifact (an incremental collect re-reads its whole source).
    #[serde(skip)]
    pub forced: bool,
}

/// The whole plan, in execution order.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Stages in topological order.
    pub stages: Vec<PlannedStage>,
}

/// Options that change what runs.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Stages to re-run even if cached.
    pub force: Vec<String>,
    /// Re-run everything.
    pub force_all: bool,
    /// Run only this stage...
    pub only: Option<String>,
    /// ...and its upstream closure.
    pub with_deps: bool,
}

/// Builds the plan. Reads only small state files and source metadata, never data.
pub fn plan(
    p: &Pipeline,
    registry: &Registry,
    state_dir: &Path,
    opts: &PlanOptions,
) -> Result<Plan, CoreError> {
    for name in opts.force.iter().chain(opts.only.iter()) {
        if p.index(name).is_none() {
            let names: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
            let hint = crate::diagnostic::suggestion(name, names.iter().copied())
                .unwrap_or_else(|| format!("stages: {}", names.join(", ")));
            return Err(CoreError::Usage(format!("no stage `{name}` in pipeline `{}`; {hint}", p.name)));
        }
    }
    let selected: BTreeSet<usize> = match &opts.only {
        None => (0..p.stages.len()).collect(),
        Some(name) => {
            let i = p.index(name).unwrap_or_default();
            if opts.with_deps { upstream_closure(p, &[i]) } else { BTreeSet::from([i]) }
        }
    };
    let store = ArtifactStore::new(state_dir);
    let prev = PipelineState::load(state_dir, &p.name);
    let mut memo = FingerprintMemo::load(state_dir);
    let mut keys: Vec<String> = vec![String::new(); p.stages.len()];
    let mut out = Vec::with_capacity(p.stages.len());
    for &i in &p.order {
        let spec = &p.stages[i];
        let kind = registry
            .kind(&spec.kind)
            .ok_or_else(|| CoreError::Usage(format!("unknown stage kind `{}`", spec.kind)))?;
        // Every stage's key needs its sources, selected or not: a key computed without them
        // would not find the artifact a full run made.
        let sources = kind
            .sources(spec, registry)
            .map_err(|source| CoreError::Stage { stage: spec.name.clone(), source })?;
        let (source, volatile) = match sources {
            None => (None, false),
            Some(Sources::Files(files)) => (Some(memo.fingerprint(&files)?), false),
            Some(Sources::Token(t)) => (Some(blake3::hash(t.as_bytes()).to_hex().to_string()), false),
            Some(Sources::Volatile) => (None, true),
        };
        let input_keys: Vec<(String, String)> = spec
            .inputs
            .iter()
            .map(|inp| {
                let key = p.index(&inp.stage).map(|j| keys[j].clone()).unwrap_or_default();
                (inp.text.clone(), key)
            })
            .collect();
        let mut h = blake3::Hasher::new();
        h.update(spec.config_hash.as_bytes());
        for (r, k) in &input_keys {
            h.update(b"\0").update(r.as_bytes()).update(b"=").update(k.as_bytes());
        }
        if let Some(s) = &source {
            h.update(b"\0source=").update(s.as_bytes());
        }
        if registry.kind(&spec.kind).is_some_and(|k| k.uses_seed()) {
            // A different pipeline seed draws different rows.
            h.update(b"\0seed=").update(&p.seed.to_le_bytes());
        }
        if volatile {
            // A fresh key every run: a volatile source is never reused.
            h.update(format!("{:?}", std::time::SystemTime::now()).as_bytes());
        }
        let forced = opts.force_all || opts.force.contains(&spec.name);
        // An accumulating stage's output is the artifact it builds on plus what is new, so
        // that artifact is part of its key (a forced run builds on nothing: a full read).
        // When nothing changed since that artifact, it is the answer.
        let mut reuse = None;
        if kind.builds_on_previous(spec)
            && !forced
            && let Some(last) = prev.stages.get(&spec.name)
            && store.exists(&last.cache_key)
        {
            let unchanged = !volatile
                && last.config_hash == spec.config_hash
                && last.source == source
                && last.inputs == input_keys;
            if unchanged {
                reuse = Some(last.cache_key.clone());
            } else {
                h.update(b"\0builds_on=").update(last.cache_key.as_bytes());
            }
        }
        let key = reuse.unwrap_or_else(|| h.finalize().to_hex()[..32].to_string());
        keys[i] = key.clone();

        let (action, reason) = if !selected.contains(&i) {
            (Action::Skip, "not selected".to_string())
        } else if forced {
            (Action::Run, "forced".to_string())
        } else if volatile {
            (Action::Run, "source is volatile".to_string())
        } else if store.exists(&key) {
            (Action::Cached, "unchanged".to_string())
        } else {
            (Action::Run, miss_reason(prev.stages.get(&spec.name), &spec.config_hash, &input_keys, &source))
        };
        out.push(PlannedStage {
            index: i,
            name: spec.name.clone(),
            kind: spec.kind.clone(),
            cache_key: key,
            action,
            reason,
            source,
            input_keys,
            forced: forced && selected.contains(&i),
        });
    }
    // Best effort: a memo that cannot be saved only costs a re-hash next time.
    let _ = memo.save(state_dir);

    if opts.only.is_some() {
        let missing: Vec<String> = out
            .iter()
            .filter(|s| s.action != Action::Skip)
            .flat_map(|s| p.upstream(s.index))
            .filter(|j| !selected.contains(j))
            .filter(|&j| !store.exists(&keys[j]))
            .map(|j| p.stages[j].name.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !missing.is_empty() {
            return Err(CoreError::Usage(format!(
                "stage `{}` needs the output of {} for the current config, and it has not been computed; \
                 add --with-deps to run upstream stages too",
                opts.only.as_deref().unwrap_or_default(),
                missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    Ok(Plan { stages: out })
}

fn miss_reason(
    prev: Option<&StageState>,
    config_hash: &str,
    input_keys: &[(String, String)],
    source: &Option<String>,
) -> String {
    let Some(prev) = prev else {
        return "new".to_string();
    };
    if prev.config_hash != config_hash {
        return "config changed".to_string();
    }
    if let Some((r, _)) = input_keys.iter().find(|ik| !prev.inputs.contains(ik)) {
        return format!("input `{r}` changed");
    }
    if &prev.source != source {
        return "source changed".to_string();
    }
    "artifact missing".to_string()
}

impl PlannedStage {
    /// The state to remember once this stage succeeded.
    pub fn state(&self, config_hash: &str) -> StageState {
        StageState {
            cache_key: self.cache_key.clone(),
            config_hash: config_hash.to_string(),
            inputs: self.input_keys.clone(),
            source: self.source.clone(),
        }
    }
}
