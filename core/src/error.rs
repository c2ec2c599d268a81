//! Errors of the core crate, split by who is at fault.

use std::path::PathBuf;

use crate::diagnostic::Diagnostic;

/// A stage failed while running.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// A connector failed (names file and line where it can).
    #[error(transparent)]
    Connector(#[from] sluice_plugin::ConnectorError),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Parquet encoding or decoding failed.
    #[error("{}: {source}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The error.
        source: parquet::errors::ParquetError,
    },
    /// An Arrow compute or conversion error.
    #[error("{context}: {source}")]
    Arrow {
        /// What was being done.
        context: String,
        /// The error.
        source: arrow::error::ArrowError,
    },
    /// A problem that points back into the pipeline file (e.g. a SQL error).
    #[error("{}", .0.message)]
    Diagnostic(Box<Diagnostic>),
    /// A failure already phrased for a person.
    #[error("{0}")]
    Failed(String),
    /// Something that should not happen.
    #[error("internal error (this is a bug in sluice): {0}")]
    Internal(String),
}

impl StageError {
    /// The stage config key a connector's configuration error names (`schema.kk`, `query`).
    pub fn config_key(&self) -> Option<&str> {
        match self {
            StageError::Connector(sluice_plugin::ConnectorError::Config { key, .. }) => Some(key),
            _ => None,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StageError::Io { path: path.into(), source }
    }

    /// An Arrow error with context.
    pub fn arrow(context: impl Into<String>, source: arrow::error::ArrowError) -> Self {
        StageError::Arrow { context: context.into(), source }
    }

    /// The full text for records and terminals (a diagnostic renders with its source line).
    pub fn render(&self) -> String {
        match self {
            StageError::Diagnostic(d) => d.render().trim_end().to_string(),
            other => other.to_string(),
        }
    }
}

/// Errors of the runner itself (state dir, run records, plan).
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A file or directory of the state dir could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A state file exists but cannot be parsed.
    #[error("{}: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The request cannot be carried out as asked (user's fault; exit 2).
    #[error("{0}")]
    Usage(String),
    /// A stage's external sources could not be inspected while planning.
    #[error("stage `{stage}`: {source}")]
    Stage {
        /// The stage.
        stage: String,
        /// The error.
        source: StageError,
    },
}

impl CoreError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CoreError::Io { path: path.into(), source }
    }

    /// Whether the user caused it (exit code 2) rather than the environment (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(self, CoreError::Usage(_))
    }
}
