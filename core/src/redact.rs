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

    /// The text with every secret replaced, in any ASCII letter case: a server may echo a
    /// value folded (PostgreSQL lowercases an unquoted identifier, so `ToKeN` comes back
    /// as `token`).
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in self.secrets.iter() {
            out = replace_ignoring_case(&out, s);
        }
        out
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

/// `text` with every ASCII-case-insensitive occurrence of `secret` replaced by `***`.
/// ASCII lowercasing keeps every byte offset, so matches found in the folded copy are
/// valid ranges of the original.
fn replace_ignoring_case(text: &str, secret: &str) -> String {
    let folded = text.to_ascii_lowercase();
    let needle = secret.to_ascii_lowercase();
    if !folded.contains(needle.as_str()) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    // Matches do not overlap.
    for (at, _) in folded.match_indices(needle.as_str()) {
        out.push_str(&text[last..at]);
        out.push_str("***");
        last = at + needle.len();
    }
    out.push_str(&text[last..]);
    out
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

    #[test]
    fn replaces_secrets_in_any_letter_case() {
        let r = Redactor::new(["ToKeNvAl".to_string()]);
        assert_eq!(r.redact(r#"column "tokenval" does not exist"#), r#"column "***" does not exist"#);
        assert_eq!(r.redact("TOKENVAL and ToKeNvAl, ünïcode"), "*** and ***, ünïcode");
    }
}
