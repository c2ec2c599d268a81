//! A TOML value tree that keeps byte spans and key order, so every later check can point at
//! the exact place in the pipeline file.

use std::ops::Range;

use serde_json::Value as Json;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A value from the pipeline file with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: NodeValue,
    /// Byte range of the value in the file.
    pub span: Range<usize>,
}

/// The kinds of TOML value.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    /// A string.
    String(String),
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A date/time, kept as written.
    Datetime(String),
    /// An array.
    Array(Vec<Node>),
    /// A table, in file order.
    Table(Table),
}

/// A TOML table in file order, with key spans.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    /// Entries in the order they were written.
    pub entries: Vec<Entry>,
}

/// One `key = value` of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// Byte range of the key.
    pub key_span: Range<usize>,
    /// The value.
    pub value: Node,
}

impl Table {
    /// The entry for `key`.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.value)
    }

    /// Keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.key.as_str())
    }
}

impl Node {
    /// Converts from the toml crate's spanned value.
    pub fn from_de(v: &Spanned<DeValue<'_>>) -> Result<Node, (String, Range<usize>)> {
        let span = v.span();
        let value = match v.get_ref() {
            DeValue::String(s) => NodeValue::String(s.to_string()),
            DeValue::Integer(i) => {
                let digits = i.as_str().replace('_', "");
                let parsed = i64::from_str_radix(&digits, i.radix())
                    .map_err(|_| (format!("integer `{i}` does not fit in 64 bits"), span.clone()))?;
                NodeValue::Integer(parsed)
            }
            DeValue::Float(f) => {
                let text = f.as_str().replace('_', "");
                let parsed = match text.as_str() {
                    "inf" | "+inf" => f64::INFINITY,
                    "-inf" => f64::NEG_INFINITY,
                    "nan" | "+nan" | "-nan" => f64::NAN,
                    t => t.parse().map_err(|_| (format!("bad float `{t}`"), span.clone()))?,
                };
                NodeValue::Float(parsed)
            }
            DeValue::Boolean(b) => NodeValue::Bool(*b),
            DeValue::Datetime(d) => NodeValue::Datetime(d.to_string()),
            DeValue::Array(items) => {
                NodeValue::Array(items.iter().map(Node::from_de).collect::<Result<Vec<_>, _>>()?)
            }
            DeValue::Table(t) => NodeValue::Table(Table::from_de(t)?),
        };
        Ok(Node { value, span })
    }

    /// The TOML type name, for messages.
    pub fn type_name(&self) -> &'static str {
        match &self.value {
            NodeValue::String(_) => "a string",
            NodeValue::Integer(_) => "an integer",
            NodeValue::Float(_) => "a float",
            NodeValue::Bool(_) => "a boolean",
            NodeValue::Datetime(_) => "a datetime",
            NodeValue::Array(_) => "an array",
            NodeValue::Table(_) => "a table",
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The table, if this is one.
    pub fn as_table(&self) -> Option<&Table> {
        match &self.value {
            NodeValue::Table(t) => Some(t),
            _ => None,
        }
    }

    /// The items, if this is an array.
    pub fn as_array(&self) -> Option<&[Node]> {
        match &self.value {
            NodeValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The value as JSON (key order kept).
    pub fn to_json(&self) -> Json {
        match &self.value {
            NodeValue::String(s) => Json::String(s.clone()),
            NodeValue::Integer(i) => Json::from(*i),
            NodeValue::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
            NodeValue::Bool(b) => Json::Bool(*b),
            NodeValue::Datetime(d) => Json::String(d.clone()),
            NodeValue::Array(a) => Json::Array(a.iter().map(Node::to_json).collect()),
            NodeValue::Table(t) => {
                Json::Object(t.entries.iter().map(|e| (e.key.clone(), e.value.to_json())).collect())
            }
        }
    }

    /// Finds the span of a dotted key path below this node (`schema.Quantity`, `steps.1.op`).
    pub fn span_of(&self, path: &str) -> Option<Range<usize>> {
        let mut node = self;
        let mut key_span = None;
        for part in path.split('.').filter(|p| !p.is_empty()) {
            match &node.value {
                NodeValue::Table(t) => {
                    let e = t.entry(part)?;
                    key_span = Some(e.key_span.clone());
                    node = &e.value;
                }
                NodeValue::Array(items) => {
                    node = items.get(part.parse::<usize>().ok()?)?;
                    key_span = None;
                }
                _ => return key_span,
            }
        }
        Some(if matches!(node.value, NodeValue::Table(_)) {
            key_span.unwrap_or_else(|| node.span.clone())
        } else {
            node.span.clone()
        })
    }
}

impl Table {
    /// Converts from the toml crate's table.
    pub fn from_de(t: &DeTable<'_>) -> Result<Table, (String, Range<usize>)> {
        let mut entries = Vec::with_capacity(t.len());
        for (k, v) in t.iter() {
            entries.push(Entry {
                key: k.get_ref().to_string(),
                key_span: k.span(),
                value: Node::from_de(v)?,
            });
        }
        Ok(Table { entries })
    }
}

/// Parses TOML text into a spanned table; a syntax error comes back with its span.
pub fn parse_document(text: &str) -> Result<Node, (String, Option<Range<usize>>)> {
    let doc = DeTable::parse(text).map_err(|e| (e.message().to_string(), e.span()))?;
    let span = doc.span();
    let table = Table::from_de(doc.get_ref()).map_err(|(m, s)| (m, Some(s)))?;
    Ok(Node { value: NodeValue::Table(table), span })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_spans() {
        let text = "[s]\nz = 1\na = \"x\"\nm = [1, 2]\n";
        let doc = parse_document(text).unwrap();
        let s = doc.as_table().unwrap().get("s").unwrap().as_table().unwrap();
        assert_eq!(s.keys().collect::<Vec<_>>(), ["z", "a", "m"]);
        let a = s.get("a").unwrap();
        assert_eq!(&text[a.span.clone()], "\"x\"");
        assert_eq!(&text[doc.span_of("s.m.1").unwrap()], "2");
        assert_eq!(&text[doc.span_of("s.a").unwrap()], "\"x\"");
    }

    #[test]
    fn syntax_error_has_span() {
        let (msg, span) = parse_document("a = \n").unwrap_err();
        assert!(!msg.is_empty());
        assert!(span.is_some());
    }
}

/// Maps a byte offset inside a string's *decoded* content to a byte offset in the file, so
/// an error at "line 3 of the SQL" can point at the right line of the pipeline file. Walks
/// the raw literal, accounting for the opening delimiter, the newline TOML trims after
/// `"""`, and escape sequences.
pub fn string_offset_in_file(file_text: &str, span: &Range<usize>, decoded: usize) -> usize {
    let Some(raw) = file_text.get(span.clone()) else { return span.start };
    let (delim, literal) = if raw.starts_with("\"\"\"") {
        (3, false)
    } else if raw.starts_with("'''") {
        (3, true)
    } else if raw.starts_with('"') {
        (1, false)
    } else if raw.starts_with('\'') {
        (1, true)
    } else {
        return span.start;
    };
    let mut i = delim;
    let bytes = raw.as_bytes();
    if delim == 3 {
        if raw[i..].starts_with("\r\n") {
            i += 2;
        } else if raw[i..].starts_with('\n') {
            i += 1;
        }
    }
    let mut seen = 0usize;
    while seen < decoded && i < raw.len() - delim.min(raw.len()) {
        if !literal && bytes[i] == b'\\' && i + 1 < raw.len() {
            match bytes[i + 1] {
                b'u' => {
                    i += 6;
                    seen += 1;
                }
                b'U' => {
                    i += 10;
                    seen += 1;
                }
                b'\n' | b'\r' | b' ' | b'\t' => {
                    // Line-ending backslash: the newline and following whitespace vanish.
                    i += 1;
                    while i < raw.len() && matches!(bytes[i], b'\n' | b'\r' | b' ' | b'\t') {
                        i += 1;
                    }
                }
                _ => {
                    i += 2;
                    seen += 1;
                }
            }
        } else {
            let ch_len = raw[i..].chars().next().map_or(1, char::len_utf8);
            i += ch_len;
            seen += ch_len;
        }
    }
    span.start + i.min(raw.len())
}

#[cfg(test)]
mod offset_tests {
    use super::*;

    #[test]
    fn maps_offsets_through_delimiters_and_escapes() {
        let text = "sql = \"\"\"\nSELECT a,\n  bogus FROM t\"\"\"\n";
        let start = text.find("\"\"\"").unwrap();
        let span = start..text.len() - 1;
        let decoded = "SELECT a,\n  bogus FROM t";
        let at = decoded.find("bogus").unwrap();
        assert_eq!(&text[string_offset_in_file(text, &span, at)..][..5], "bogus");
        let text = "s = \"a\\tb c\"";
        let span = 4..text.len();
        // decoded "a\tb c": offset of `c` is 4.
        assert_eq!(&text[string_offset_in_file(text, &span, 4)..][..1], "c");
    }
}
