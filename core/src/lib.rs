//! Sluice core: pipeline spec and compile (with diagnostics), DAG planner, executor,
//! content-addressed artifact store, run records and the registry of kinds.
//!
//! Module map:
//! - [`node`] spanned TOML tree → [`compile`] (all checks, all diagnostics) → [`spec::Pipeline`]
//! - [`diagnostic`] `file:line:col` errors with the offending line, caret and help
//! - [`interpolate`], [`redact`] `${params.X}` / `${env.X}` and keeping secrets out of output
//! - [`graph`] topological order, cycles, closures, Mermaid/dot
//! - [`plan`] cache keys and why each stage runs; [`executor`] runs the plan
//! - [`artifact`], [`dataset`] Parquet artifacts written atomically; outputs as inputs;
//!   [`latch`] tells a stage when the background encoder has let go of its input's rows
//! - [`record`] run records; [`observer`] one interface for progress and records
//! - [`state`] state dir layout, locks, fingerprints; [`gc`] housekeeping
//! - [`schema`] schema contracts: output schemas derived before running, checked again at run time
//! - [`registry`], [`stage`] the traits stage kinds implement; [`cron`] schedules
//! - [`prefetch`], [`short_bytes`] small helpers for hash tables over millions of rows

pub mod artifact;
pub mod compile;
pub mod cron;
pub mod dataset;
pub mod diagnostic;
pub(crate) mod dictionary_chunk;
pub mod error;
pub mod executor;
pub mod gc;
pub mod graph;
pub mod interpolate;
pub mod latch;
pub mod node;
pub mod observer;
pub mod plan;
pub mod prefetch;
pub mod record;
pub mod redact;
pub mod registry;
pub mod schema;
pub mod short_bytes;
pub mod spec;
pub mod stage;
pub mod state;
pub(crate) mod thread_priority;

pub use compile::{CompileOptions, compile};
pub use diagnostic::{Diagnostic, Severity, SourceFile};
pub use error::{CoreError, StageError};
pub use registry::{Arity, Derived, Issue, Registry, StageKind};
pub use spec::{Pipeline, StageSpec};
pub use stage::{Input, Previous, Stage, StageContext};

/// Re-exported so stage kinds use the same SDK types.
pub use sluice_plugin;
