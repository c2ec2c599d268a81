//! Diagnostics that point at the line: `file:line:col`, the offending line, a caret, a help.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Stops validation.
    Error,
    /// Reported, but the pipeline still runs.
    Warning,
}

/// A pipeline file's text, kept so diagnostics can show lines.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path as the user gave it.
    pub path: PathBuf,
    /// Full text.
    pub text: Arc<str>,
    line_starts: Arc<[usize]>,
}

impl SourceFile {
    /// Wraps a file's text.
    pub fn new(path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile { path: path.into(), text, line_starts: starts.into() }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let col = self.text.get(start..offset).map_or(offset - start, |s| s.chars().count());
        (line + 1, col + 1)
    }

    /// Text of a 1-based line, without its newline.
    pub fn line_text(&self, line: usize) -> &str {
        let start = self.line_starts.get(line - 1).copied().unwrap_or(self.text.len());
        let end = self.line_starts.get(line).map_or(self.text.len(), |e| e.saturating_sub(1));
        self.text.get(start..end.max(start)).unwrap_or("").trim_end_matches('\r')
    }

    /// Byte offset where a 1-based line starts.
    pub fn line_start(&self, line: usize) -> usize {
        self.line_starts.get(line.saturating_sub(1)).copied().unwrap_or(self.text.len())
    }
}

/// One problem found in a pipeline file (or at run time, pointing back into it).
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code, e.g. `unknown-key`.
    pub code: &'static str,
    /// The headline.
    pub message: String,
    /// Where, if known: the file and a byte range in it.
    pub span: Option<(SourceFile, Range<usize>)>,
    /// Text under the caret.
    pub label: Option<String>,
    /// How to fix it.
    pub help: Option<String>,
    /// Extra context lines.
    pub notes: Vec<String>,
    /// A file the diagnostic is about when there is no span (e.g. a file that fails to read).
    pub path: Option<PathBuf>,
}

impl Diagnostic {
    /// The diagnostic with every secret replaced in its text (a path or query built from
    /// `${env.…}` may be quoted in a message).
    pub fn redacted(mut self, redactor: &crate::redact::Redactor) -> Self {
        if redactor.is_empty() {
            return self;
        }
        self.message = redactor.redact(&self.message);
        self.label = self.label.map(|l| redactor.redact(&l));
        self.help = self.help.map(|h| redactor.redact(&h));
        self.notes = self.notes.iter().map(|n| redactor.redact(n)).collect();
        self
    }

    /// An error.
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span: None,
            label: None,
            help: None,
            notes: Vec::new(),
            path: None,
        }
    }

    /// A warning.
    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, message) }
    }

    /// Points the diagnostic at a span of a file.
    pub fn at(mut self, file: &SourceFile, span: Range<usize>) -> Self {
        self.span = Some((file.clone(), span));
        self
    }

    /// Names a file without a span.
    pub fn in_file(mut self, path: &Path) -> Self {
        self.path = Some(path.to_path_buf());
        self
    }

    /// Sets the text under the caret.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Sets the help line.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets the help line if there is one.
    pub fn maybe_help(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    /// Adds a note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:col` of the start of the span, if any.
    pub fn location(&self) -> Option<(PathBuf, usize, usize)> {
        self.span.as_ref().map(|(file, span)| {
            let (l, c) = file.line_col(span.start);
            (file.path.clone(), l, c)
        })
    }

    /// Renders for a terminal (without colour, so snapshots and logs stay plain).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{sev}[{}]: {}", self.code, self.message);
        match &self.span {
            Some((file, span)) => {
                let (line, col) = file.line_col(span.start);
                let text = file.line_text(line);
                let gutter = line.to_string().len();
                let pad = " ".repeat(gutter);
                let _ = writeln!(out, "{pad}--> {}:{line}:{col}", file.path.display());
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{line} | {text}");
                // Caret width: the span's chars on this line, at least one.
                let line_end = file.line_start(line) + text.len();
                let end = span.end.min(line_end).max(span.start);
                let width = file.text.get(span.start..end).map_or(1, |s| s.chars().count()).max(1);
                let lead: String =
                    text.chars().take(col - 1).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
                let carets = "^".repeat(width);
                match &self.label {
                    Some(label) => {
                        let _ = writeln!(out, "{pad} | {lead}{carets} {label}");
                    }
                    None => {
                        let _ = writeln!(out, "{pad} | {lead}{carets}");
                    }
                }
                for note in &self.notes {
                    let _ = writeln!(out, "{pad} = note: {note}");
                }
                if let Some(help) = &self.help {
                    let _ = writeln!(out, "{pad} = help: {help}");
                }
            }
            None => {
                if let Some(path) = &self.path {
                    let _ = writeln!(out, " --> {}", path.display());
                }
                if let Some(label) = &self.label {
                    let _ = writeln!(out, "  = {label}");
                }
                for note in &self.notes {
                    let _ = writeln!(out, "  = note: {note}");
                }
                if let Some(help) = &self.help {
                    let _ = writeln!(out, "  = help: {help}");
                }
            }
        }
        out
    }

    /// The machine-readable form used by `--json`.
    pub fn to_json(&self) -> serde_json::Value {
        let loc = self.location();
        serde_json::json!({
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "file": loc.as_ref().map(|l| l.0.display().to_string())
                .or_else(|| self.path.as_ref().map(|p| p.display().to_string())),
            "line": loc.as_ref().map(|l| l.1),
            "column": loc.as_ref().map(|l| l.2),
            "label": self.label,
            "help": self.help,
            "notes": self.notes,
        })
    }
}

/// Levenshtein distance, for "did you mean".
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest candidate to `name`, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a, I>(name: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let lower = name.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.chars().count().max(name.chars().count()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// "did you mean `x`?" or `None`.
pub fn suggestion<'a, I>(name: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    did_you_mean(name, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one_and_in_chars() {
        let f = SourceFile::new("p.toml", "a = 1\nbé = \"x\"\n");
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(6), (2, 1));
        // `=` comes after the two-byte é: column 4 in characters.
        assert_eq!(f.line_col(10), (2, 4));
        assert_eq!(f.line_text(2), "bé = \"x\"");
    }

    #[test]
    fn render_points_at_span() {
        let f = SourceFile::new("p.toml", "[stages.a]\nkidn = \"collect\"\n");
        let d = Diagnostic::error("unknown-key", "unknown key `kidn` in stage `a`")
            .at(&f, 11..15)
            .label("unknown key")
            .help("did you mean `kind`?");
        insta::assert_snapshot!(d.render(), @r#"
        error[unknown-key]: unknown key `kidn` in stage `a`
         --> p.toml:2:1
          |
        2 | kidn = "collect"
          | ^^^^ unknown key
          = help: did you mean `kind`?
        "#);
    }

    #[test]
    fn did_you_mean_finds_close_names_only() {
        assert_eq!(did_you_mean("ordrs", ["orders", "clean"]), Some("orders"));
        assert_eq!(did_you_mean("zzz", ["orders", "clean"]), None);
        assert_eq!(did_you_mean("Kind", ["kind"]), Some("kind"));
    }
}
