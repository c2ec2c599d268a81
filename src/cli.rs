//! Command-line definitions (clap). No logic here: see `commands.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Sluice: declarative data and model pipelines. A TOML file in, a DAG of cached stages out.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, max_term_width = 100)]
pub struct Cli {
    /// More log output (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// State dir (artifacts, runs). Default: $SLUICE_HOME, else .sluice in the current dir.
    #[arg(long, global = true, env = "SLUICE_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Graph formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormatArg {
    /// Mermaid flowchart.
    Mermaid,
    /// Graphviz dot.
    Dot,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check pipeline files, including columns and types against known schemas, without
    /// running anything (exit 0 valid, 2 invalid).
    Validate {
        /// Pipeline files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Parameter overrides, NAME=VALUE.
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Diagnostics as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Also open every source and check its real schema against the pipeline (reads
        /// only the first batch of each source; runs nothing).
        #[arg(long)]
        data: bool,
    },
    /// Validate, plan and execute a pipeline.
    Run(RunArgs),
    /// Show each stage and why it would run or is cached, without running anything.
    Plan {
        /// Pipeline file.
        file: PathBuf,
        /// Parameter overrides, NAME=VALUE.
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Re-run this stage even if cached (repeatable).
        #[arg(long, value_name = "STAGE")]
        force: Vec<String>,
        /// Re-run every stage.
        #[arg(long)]
        force_all: bool,
        /// Plan only this stage.
        #[arg(long, value_name = "STAGE")]
        stage: Option<String>,
        /// With --stage: its upstream stages too.
        #[arg(long, requires = "stage")]
        with_deps: bool,
        /// The plan as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the stage DAG.
    Graph {
        /// Pipeline file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormatArg::Mermaid)]
        format: GraphFormatArg,
    },
    /// List stage kinds and connectors.
    Kinds {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// List runs, newest first.
    Runs {
        /// Only runs of this pipeline.
        #[arg(long)]
        pipeline: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one run: per stage status, cache, reason, rows, duration, error.
    Show {
        /// Run id, a unique prefix of one, or `latest`.
        run: String,
        /// As JSON (the run record).
        #[arg(long)]
        json: bool,
    },
    /// Remove artifacts no kept run references, old run records and crash leftovers.
    Gc {
        /// Newest runs kept per pipeline.
        #[arg(long, default_value_t = 10)]
        keep_runs: usize,
        /// Report what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// The report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Arguments of `sluice run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Pipeline file.
    pub file: PathBuf,
    /// Parameter overrides, NAME=VALUE (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Stages running at once (default: number of cores).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// MiB of each stage output kept in memory for the stages that read it; larger outputs
    /// are re-read from their Parquet file (default: 1/8 of RAM, 512–4096).
    #[arg(long, value_name = "MIB")]
    pub memory_budget: Option<usize>,
    /// Re-run this stage even if cached (repeatable).
    #[arg(long, value_name = "STAGE")]
    pub force: Vec<String>,
    /// Re-run every stage.
    #[arg(long)]
    pub force_all: bool,
    /// Run only this stage, from upstream artifacts already present.
    #[arg(long, value_name = "STAGE")]
    pub stage: Option<String>,
    /// With --stage: run its upstream stages too.
    #[arg(long, requires = "stage")]
    pub with_deps: bool,
    /// Print the run record as JSON at the end.
    #[arg(long)]
    pub json: bool,
}
