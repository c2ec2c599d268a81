//! The `sluice` command line. Thin: parses arguments, calls the library crates, renders
//! results for people (or JSON for machines) and maps outcomes to exit codes:
//! 0 ok, 1 a stage or the environment failed, 2 invalid input or usage.

mod allocator;
mod cli;
mod commands;
mod logging;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;

/// How a command ended.
pub enum Outcome {
    /// Exit 0.
    Ok,
    /// Exit 1: a stage failed or I/O broke.
    Failed,
    /// Exit 2: the user's input or usage is wrong.
    Invalid,
}

fn main() -> ExitCode {
    allocator::keep_freed_memory();
    let cli = cli::Cli::parse();
    logging::init(cli.verbose, cli.quiet, cli.log_format);
    match commands::dispatch(cli) {
        Outcome::Ok => ExitCode::SUCCESS,
        Outcome::Failed => ExitCode::from(1),
        Outcome::Invalid => ExitCode::from(2),
    }
}
