//! Errors a connector reports. Every variant names where the problem is.

use std::path::PathBuf;

/// A problem with a connector's configuration found before reading data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key path inside the stage table, e.g. `path` or `schema.Quantity`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when that can be said.
    pub help: Option<String>,
}

impl ConfigIssue {
    /// A problem at `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigIssue { key: key.into(), message: message.into(), help: None }
    }

    /// Adds a fix suggestion.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// An error while reading or writing data.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The configuration is unusable (names the key).
    #[error("invalid `{key}`: {message}")]
    Config {
        /// The offending key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A row of the source could not be read (with `on_error = "fail"`).
    #[error("{}:{line}: {reason}", file.display())]
    Malformed {
        /// The source file.
        file: PathBuf,
        /// 1-based line number of the row.
        line: u64,
        /// Why the row was refused, naming the column when one is at fault.
        reason: String,
    },
    /// An Arrow error, with context.
    #[error("{context}: {source}")]
    Arrow {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: arrow::error::ArrowError,
    },
    /// Any other failure, already phrased for a person.
    #[error("{0}")]
    Other(String),
}

impl ConnectorError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ConnectorError::Io { path: path.into(), source }
    }

    /// A configuration error at `key`.
    pub fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConnectorError::Config { key: key.into(), message: message.into() }
    }
}
