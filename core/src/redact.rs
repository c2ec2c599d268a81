//! Keeps secrets (values interpolated from `${env.…}`) out of logs, records and errors.

use std::sync::Arc;

/// Replaces known secret values with `***`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Arc<Vec<String>>,
}

impl Redactor {
    /// A redactor for these values (empty and very short values are ignored: replacing
    /// every `1` in a message would make it unreadable and protects nothing).
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = values.into_iter().filter(|v| v.len() >= 4).collect();
        // Longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets: Arc::new(secrets) }
    }

    /// The text with every secret replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in self.secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_secrets_longest_first() {
        let r = Redactor::new(["hunter2pass".to_string(), "hunter2".to_string(), "x".into()]);
        assert_eq!(r.redact("url=pg://u:hunter2pass@h x"), "url=pg://u:***@h x");
        assert_eq!(r.redact("hunter2"), "***");
    }
}
