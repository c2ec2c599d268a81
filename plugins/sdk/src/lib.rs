//! The Sluice plugin SDK.
//!
//! A connector or model is written against the safe traits in this crate. Built-in
//! connectors (crate `sluice-connectors`) implement exactly these traits, so the plugin API
//! is exercised by every built-in. This crate depends on arrow (plus serde_json for configs)
//! and never on the runner.

pub mod connector;
pub mod error;
pub mod exact_cast;
pub mod keys;
pub mod types;

pub use connector::{BatchReader, Connector, OnError, ReadRequest, Reject, Sources, Watermark};
pub use error::{ConfigIssue, ConnectorError};
pub use keys::{KeySpec, KeyType};
pub use types::{parse_type_name, type_name};

/// Version of the plugin ABI this SDK speaks. The host refuses a plugin with another one.
pub const ABI_VERSION: u32 = 1;

/// Re-exported so plugins use the same arrow the host was built with.
pub use arrow;
/// Re-exported so plugins parse configs with the same serde_json.
pub use serde_json;
